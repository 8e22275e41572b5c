// An OpenID Connect provider for tests/oidc_e2e.rs: node provider.mjs PORT REDIRECT_URI.
// One confidential client (rpa-console / rpa-console-secret) that must use
// PKCE (S256); oidc-provider's own login and consent pages (any password);
// the accounts' groups come from GROUPS below.
import Provider from "oidc-provider";

const [port, redirect] = process.argv.slice(2);
const GROUPS = { frank: ["rpa-operators"], grace: ["rpa-admins"], mallory: [] };

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: "rpa-console",
      client_secret: "rpa-console-secret",
      redirect_uris: [redirect],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  pkce: { required: () => true, methods: ["S256"] },
  claims: { openid: ["sub"], profile: ["preferred_username", "name", "groups"] },
  features: { devInteractions: { enabled: true } },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, preferred_username: id, name: id, groups: GROUPS[id] || [] }),
  }),
  cookies: { keys: ["rpa-test-oidc-cookie-key"] },
});
provider.proxy = false;
provider.listen(Number(port), "127.0.0.1", () => console.log(`oidc provider on ${port}`));

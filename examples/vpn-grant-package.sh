# The demo package of "vpn-grant", the robot step of the demo workflow
# "vpn申请": examples/robot runs it with the ticket's fields as RPA_ARG_<NAME>
# variables; its output `vpn_account` is written back into the ticket.
echo "granting VPN access for ${RPA_ARG_VPN_DAYS} days: ${RPA_ARG_TITLE}"
echo "::step 1 create the VPN account"
account="vpn-$(date +%s)-$$"
echo "::output {\"vpn_account\": \"${account}\"}"

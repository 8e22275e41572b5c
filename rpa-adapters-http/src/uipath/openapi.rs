//! The UiPath-compatible surface in `/openapi.json`: one OData handler
//! serves every entity, so the operations are described here, from one
//! table, under `/odata/` (the same paths answer under
//! `/{org}/{tenant}/odata/` and `/{org}/{tenant}/orchestrator_/odata/`).

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{OpenApi, Required};

/// `(method, path, summary)` of every operation; `Q` marks a list that
/// takes the OData query options.
const OPERATIONS: &[(HttpMethod, &str, &str, bool)] = &[
    (
        HttpMethod::Post,
        "/oauth/token",
        "A token: client_credentials or refresh_token grant (also /identity_/connect/token)",
        false,
    ),
    (
        HttpMethod::Get,
        "/odata/Folders",
        "Folders (also OrganizationUnits)",
        true,
    ),
    (
        HttpMethod::Get,
        "/odata/Releases",
        "Processes the caller may start (also Processes)",
        true,
    ),
    (
        HttpMethod::Get,
        "/odata/Jobs",
        "Jobs; State and ReleaseName filters read an index",
        true,
    ),
    (HttpMethod::Get, "/odata/Jobs({Id})", "A job", false),
    (
        HttpMethod::Get,
        "/odata/Jobs/UiPath.Server.Configuration.OData.GetByKey(identifier={Key})",
        "A job by its Key",
        false,
    ),
    (
        HttpMethod::Post,
        "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs",
        "Start jobs: {startInfo: {ReleaseKey | ReleaseName, Strategy, JobsCount, RobotIds, InputArguments, Source}}",
        false,
    ),
    (
        HttpMethod::Post,
        "/odata/Jobs/UiPath.Server.Configuration.OData.StopJobs",
        "Stop jobs: {jobIds, strategy: SoftStop | Kill}",
        false,
    ),
    (
        HttpMethod::Post,
        "/odata/Jobs/UiPath.Server.Configuration.OData.RestartJob",
        "Run a job again: {jobId}",
        false,
    ),
    (
        HttpMethod::Get,
        "/odata/RobotLogs",
        "A job's run log ($filter=JobKey eq <Key>)",
        true,
    ),
    (HttpMethod::Get, "/odata/Robots", "Robots (ManageRobots)", true),
    (
        HttpMethod::Get,
        "/odata/Sessions",
        "Robots' sessions and states (ManageRobots)",
        true,
    ),
    (HttpMethod::Get, "/odata/QueueDefinitions", "Queues", true),
    (
        HttpMethod::Post,
        "/odata/QueueDefinitions",
        "Create a queue: {Name, MaxNumberOfRetries, AcceptAutomaticallyRetry, EnforceUniqueReference}",
        false,
    ),
    (
        HttpMethod::Post,
        "/odata/Queues/UiPathODataSvc.AddQueueItem",
        "Add an item: {itemData: {Name, Priority, SpecificContent, Reference, DeferDate, DueDate, RiskSlaDate, Progress}}",
        false,
    ),
    (
        HttpMethod::Post,
        "/odata/Queues/UiPathODataSvc.BulkAddQueueItems",
        "Add items: {queueName, commitType, queueItems}",
        false,
    ),
    (
        HttpMethod::Post,
        "/odata/Queues/UiPathODataSvc.StartTransaction",
        "Take an item to work: {transactionData: {Name, SpecificContent?}} (204: none)",
        false,
    ),
    (
        HttpMethod::Post,
        "/odata/QueueItems({Id})/UiPathODataSvc.SetTransactionProgress",
        "A transaction's progress: {progress}",
        false,
    ),
    (
        HttpMethod::Post,
        "/odata/Queues({Id})/UiPathODataSvc.SetTransactionResult",
        "End a transaction: {transactionResult: {IsSuccessful, ProcessingException, Output}}",
        false,
    ),
    (
        HttpMethod::Get,
        "/odata/QueueItems",
        "Queue items (the newest 1,000 of each queue)",
        true,
    ),
    (HttpMethod::Get, "/odata/QueueItems({Id})", "A queue item", false),
    (
        HttpMethod::Delete,
        "/odata/QueueItems({Id})",
        "Delete a New item",
        false,
    ),
    (
        HttpMethod::Post,
        "/odata/QueueItems/UiPathODataSvc.DeleteBulk",
        "Delete New items: {queueItemIds}",
        false,
    ),
    (
        HttpMethod::Get,
        "/odata/Assets",
        "Assets of the folder, secrets never shown (also Assets/UiPath.Server.Configuration.OData.GetFiltered)",
        true,
    ),
    (
        HttpMethod::Post,
        "/odata/Assets",
        "Create an asset: {Name, ValueScope, ValueType, StringValue | IntValue | BoolValue | CredentialUsername + CredentialPassword | SecretValue, RobotValues}",
        false,
    ),
    (
        HttpMethod::Get,
        "/odata/Assets({Id})",
        "An asset (also PUT, PATCH, DELETE)",
        false,
    ),
    (
        HttpMethod::Post,
        "/odata/Assets/UiPath.Server.Configuration.OData.GetRobotAssetByNameForRobotKey",
        "A robot's value of an asset, credentials included for a run token: {assetName, robotKey}",
        false,
    ),
    (
        HttpMethod::Post,
        "/odata/Assets/UiPath.Server.Configuration.OData.SetRobotAssetByRobotKey",
        "Set a robot's value (run token): {robotKey, robotAsset}",
        false,
    ),
    (HttpMethod::Get, "/odata/Buckets", "Storage buckets of the folder", true),
    (
        HttpMethod::Post,
        "/odata/Buckets",
        "Create a bucket: {Name, Identifier?, Description?}",
        false,
    ),
    (
        HttpMethod::Get,
        "/odata/Buckets({Id})/UiPath.Server.Configuration.OData.GetReadUri",
        "A signed link to read a file (?path=)",
        false,
    ),
    (
        HttpMethod::Get,
        "/odata/Buckets({Id})/UiPath.Server.Configuration.OData.GetWriteUri",
        "A signed link to write a file (?path=&contentType=)",
        false,
    ),
    (
        HttpMethod::Get,
        "/odata/Buckets({Id})/UiPath.Server.Configuration.OData.GetFiles",
        "Files of a bucket (?directory=&recursive=&fileNameGlob=)",
        true,
    ),
    (
        HttpMethod::Delete,
        "/odata/Buckets({Id})/UiPath.Server.Configuration.OData.DeleteFile",
        "Delete a file (?path=)",
        false,
    ),
    (
        HttpMethod::Get,
        "/api/Buckets/{Id}/ListFiles",
        "Files of a bucket by page (?prefix=&takeHint=&continuationToken=)",
        false,
    ),
    (
        HttpMethod::Get,
        "/odata/Users/UiPath.Server.Configuration.OData.GetCurrentUser",
        "Who the token is",
        false,
    ),
    (
        HttpMethod::Get,
        "/odata/Settings/UiPath.Server.Configuration.OData.GetLicense",
        "Robots connected",
        false,
    ),
];

/// Adds the UiPath-compatible operations to `doc`, tagged `uipath`.
pub fn describe(doc: &mut OpenApi) {
    for (method, path, summary, query) in OPERATIONS {
        let mut op = OperationBuilder::new()
            .tag("uipath")
            .summary(Some(*summary))
            .parameter(
                ParameterBuilder::new()
                    .name("Authorization")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some("Bearer <token> (not for /oauth/token)")),
            )
            .parameter(
                ParameterBuilder::new()
                    .name("X-UIPATH-FolderPath")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "the folder (or X-UIPATH-FolderPath-Encoded, X-UIPATH-FolderKey, X-UIPATH-OrganizationUnitId)",
                    )),
            )
            .response("200", ResponseBuilder::new().description("UiPath's answer"))
            .response(
                "400",
                ResponseBuilder::new().description("{message, errorCode, traceId}: a bad request"),
            );
        if *query {
            for (name, what) in [
                (
                    "$filter",
                    "eq ne gt lt ge le, and or not, in, contains, startswith, endswith",
                ),
                ("$orderby", "properties, asc or desc"),
                ("$top", "at most 1000 (default 100)"),
                ("$skip", "entities to skip"),
                ("$select", "properties to keep"),
                ("$expand", "navigation properties"),
                ("$count", "@odata.count is always given"),
            ] {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Query)
                        .required(Required::False)
                        .description(Some(what)),
                );
            }
        }
        doc.paths.add_path_operation(*path, vec![method.clone()], op.build());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_in_the_document() {
        let mut doc = OpenApi::default();
        describe(&mut doc);
        let n: usize = doc
            .paths
            .paths
            .values()
            .map(|item| {
                [&item.get, &item.post, &item.put, &item.delete]
                    .iter()
                    .filter(|o| o.is_some())
                    .count()
            })
            .sum();
        assert_eq!(n, OPERATIONS.len());
        assert!(
            doc.paths
                .paths
                .contains_key("/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs")
        );
    }
}

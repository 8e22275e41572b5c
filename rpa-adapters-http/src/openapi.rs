//! `GET /openapi.json`: the OpenAPI 3.1 description of every endpoint,
//! generated from the handlers' annotations and their request and result
//! types, plus the UiPath-compatible operations, which one OData handler
//! serves, from their table ([`crate::uipath::openapi`]); and Swagger UI
//! at `/docs`, served from the binary.

use axum::Router;
use rpa_core::Store;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    AppState, admin, ai, analysis, business, catalogue, centre, console, content, designers, export, federation,
    images, licenses, listener, robot, service,
};

/// The document's outline: every handler of the business, robot and
/// administration families.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "rpa",
        description = "Business API (seed 000), robot HTTP API and files (seed 001 A.2), AutomationEdge listener (seed 003), administration, \
                       the console's reads, reports from child servers. \
                       The robot WebSocket protocol (seed 001 A.1) is served at /robothub/{robotId}; the console's live stream \
                       (text/event-stream) at /console/api/stream; Prometheus metrics at /metrics."
    ),
    paths(
        business::login,
        business::logout,
        business::query_process,
        business::start_job,
        business::stop_job,
        business::job_status,
        business::add_queue_item,
        business::query_process_job,
        robot::register,
        robot::heartbeat,
        robot::report_logs,
        robot::report_finish,
        robot::report_video,
        robot::report_checkpoint,
        robot::upload,
        robot::download,
        robot::personal_file,
        robot::list_personal_files,
        console::me,
        console::overview,
        console::jobs,
        console::job,
        console::tickets,
        console::items,
        federation::results,
        federation::children,
        federation::catalogue,
        federation::package,
        export::export,
        export::import,
        catalogue::publish,
        catalogue::search,
        catalogue::unpublish,
        catalogue::subscribe,
        admin::create_user,
        admin::list_users,
        admin::unlock,
        admin::list_packages,
        admin::pin_package,
        admin::disable,
        admin::enable,
        admin::create_role,
        admin::grant,
        admin::revoke,
        admin::issue_token,
        admin::create_process,
        admin::list_processes,
        admin::upload_package,
        admin::vendor,
        admin::robot,
        admin::list_robots,
        admin::kill,
        admin::audit,
        admin::verify,
        admin::events,
        admin::listener_requests,
        admin::create_schedule,
        admin::list_schedules,
        admin::enable_schedule,
        admin::disable_schedule,
        admin::schedule_firings,
        admin::save_workflow,
        admin::list_workflows,
        admin::export_workflow,
        admin::get_directory,
        admin::put_directory,
        admin::create_webhook,
        admin::list_webhooks,
        admin::delete_webhook,
        admin::webhook_failures,
        admin::redeliver_webhook,
        licenses::create,
        licenses::list,
        licenses::renew,
        licenses::retire,
        licenses::bind,
        licenses::unbind,
        ai::call,
        ai::register,
        ai::list,
        ai::replace,
        ai::retire,
        ai::usage,
        analysis::runs,
        analysis::set_attributes,
        content::list,
        content::one,
        content::publish,
        content::change,
        content::remove,
        content::hot,
        service::problems,
        service::report,
        service::handle,
        designers::register,
        designers::heartbeat,
        designers::list,
        designers::allocate,
        designers::release,
        images::upload,
        images::list,
        images::retire,
        images::executors,
        centre::get_trigger,
        centre::put_trigger,
        centre::delete_trigger,
        centre::save_pipeline,
        centre::list_pipelines,
        centre::get_pipeline,
        centre::start_run,
        centre::list_runs,
        centre::get_run,
        centre::stop_run,
        centre::rerun,
        centre::list_pools,
        centre::put_pool,
        listener::message,
    ),
    tags(
        (name = "business", description = "Seed 000: business systems start and follow processes"),
        (name = "robot", description = "Seed 001 A.2: executors register, heart-beat and report; files"),
        (name = "admin", description = "Users, processes, packages, vendors, robots, audit, events"),
        (name = "listener", description = "Seed 003: the AutomationEdge listener"),
        (name = "uipath", description = "Seed 002: the UiPath Orchestrator-compatible OData surface, also under /{org}/{tenant}/odata/ and /{org}/{tenant}/orchestrator_/odata/"),
    )
)]
pub struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    crate::uipath::openapi::describe(&mut doc);
    doc
}

/// `/openapi.json` and Swagger UI at `/docs`.
pub fn router<S: Store>() -> Router<AppState<S>> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", document()))
}

//! The OpenAPI document at `/openapi.json`, made by utoipa from the handlers'
//! annotations and completed here where every operation is alike: bearer security,
//! the errors any operation can answer (all `application/problem+json` with the
//! `Problem` schema), and links from a started case to what can be done with it, so a
//! client or a fuzzer can follow them.

use serde_json::{Map, Value, json};
use utoipa::{
    Modify, OpenApi,
    openapi::{
        Content, Ref, RefOr, Response,
        path::Operation,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use super::{admin, cases, documents, error, exports, parties, reference, reviews, statistics, workflows};

#[derive(OpenApi)]
#[openapi(
    info(title = "gradsign", description = "Graduate employment signing and destination registration: cases, transitions and reference data."),
    paths(cases::start, cases::get, cases::list, cases::fire, parties::put_school, parties::put_student, parties::put_students, parties::list_students, parties::put_employer, parties::destination, parties::destinations,
        documents::list, documents::get, documents::upload, documents::verify, documents::verify_document, admin::emails, admin::resend, admin::overdue,
        reference::destination_categories, workflows::list, workflows::audit, workflows::publish, workflows::versions, workflows::source,
        workflows::graph, workflows::activate, workflows::impact, workflows::migrate, super::readyz, super::metrics,
        statistics::destinations, reviews::bulk, exports::destinations_csv, exports::destinations_xlsx,
        exports::cases_csv, exports::cases_xlsx),
    components(schemas(error::Problem)),
    modifiers(&BearerAuth, &ProblemResponses),
    tags((name = "cases", description = "start, read, list and advance cases"), (name = "parties", description = "reference data synced by the platform"), (name = "documents", description = "agreements, uploads and verification"), (name = "admin", description = "mail log and overdue reviews"), (name = "reference", description = "destination categories and code lists"), (name = "workflows", description = "publishing and activating workflow versions, and their audit"), (name = "operations", description = "readiness and metrics for operators"), (name = "statistics", description = "destination statistics (毕业去向落实率)"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Documents every error an operation can answer, each as `problem+json`: the ones its
/// annotation names, those its shape implies (a path parameter can name nothing: 404; a
/// body can be too large or of the wrong type: 413, 415; a secured operation can lack
/// a token: 401) and, as `default`, those any request can meet (408, 414, 431, 500).
struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let has_path_params = path.contains('{');
            for operation in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                complete(operation, has_path_params);
            }
        }
    }
}

fn complete(operation: &mut Operation, has_path_params: bool) {
    let has_body = operation.request_body.is_some();
    let has_params = has_path_params || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let implied = [
        (
            "400",
            has_params || has_body,
            "the request is malformed (a NUL character, an unparsable value)",
        ),
        ("401", secured, "no valid bearer token"),
        ("404", has_path_params, "nothing by that id the caller may see"),
        ("413", has_body, "the body is larger than the limit"),
        ("415", has_body, "the body is not of the type this operation takes"),
        (
            "422",
            has_body,
            "the body names or holds something invalid; `errors` says what",
        ),
        ("default", true, "any other error: 408 (too slow), 414, 431, 500, 503"),
    ];
    let responses = &mut operation.responses.responses;
    for (status, applies, description) in implied {
        if applies {
            responses
                .entry(status.to_string())
                .or_insert_with(|| RefOr::T(Response::new(description)));
        }
    }
    for (status, response) in responses.iter_mut() {
        let is_error = status == "default" || status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(response)) = (is_error, response) {
            response.content.clear();
            response.content.insert(
                "application/problem+json".to_string(),
                Content::new(Some(Ref::from_schema_name("Problem"))),
            );
        }
    }
}

/// The names the workflows this server runs define, which the document lists as the
/// values a request may use.
#[derive(Debug, Default)]
pub struct Vocabulary {
    pub workflows: Vec<String>,
    pub transitions: Vec<String>,
    pub upload_slots: Vec<String>,
}

/// The document served at `/openapi.json`: utoipa's, with the [`Vocabulary`] of this
/// server's workflows as the values `workflow`, a transition's `name` and an upload's
/// `slot` take, the parameters a request may leave out stated as
/// absent rather than `null` (a header or query value cannot be null), and links between
/// operations — from a new or listed case to what can be done with it, from a list to
/// its items — for clients and stateful testing. (utoipa 5's own links serialise their
/// field names in snake case, which no reader understands.)
pub fn document(vocabulary: &Vocabulary) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
    for (at, values) in [
        (
            "/components/schemas/StartCase/properties/workflow",
            &vocabulary.workflows,
        ),
        (
            "/components/schemas/UploadForm/properties/slot",
            &vocabulary.upload_slots,
        ),
    ] {
        if let Some(schema) = doc.pointer_mut(at) {
            schema["enum"] = json!(values);
        }
    }
    let fire = "/paths/~1api~1v1~1cases~1{id}~1transitions~1{name}/post/parameters";
    if let Some(name) = doc
        .pointer_mut(fire)
        .and_then(Value::as_array_mut)
        .and_then(|params| params.iter_mut().find(|p| p["name"] == "name"))
    {
        name["schema"]["enum"] = json!(vocabulary.transitions);
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut())
        {
            for parameter in operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let schema = &mut parameter["schema"];
                if let Some(Value::Array(types)) = schema.get_mut("type") {
                    types.retain(|t| t != "null");
                    if let [single] = types.as_slice() {
                        *schema.get_mut("type").expect("just read") = single.clone();
                    }
                }
                // The edge refuses a NUL in any address (400): say so.
                if schema["type"] == "string" && schema.get("pattern").is_none() && schema.get("enum").is_none() {
                    schema["pattern"] = json!("^[^\\u0000]*$");
                }
            }
        }
    }
    for (path, method, status, name, target, parameters) in LINKS {
        let parameters: Map<String, Value> = parameters.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
        let link = json!({ "operationId": target, "parameters": parameters });
        let at = format!("/paths/{}/{method}/responses/{status}", path.replace('/', "~1"));
        if let Some(response) = doc.pointer_mut(&at).and_then(Value::as_object_mut) {
            let links = response.entry("links").or_insert_with(|| json!({}));
            links[*name] = link;
        }
    }
    doc
}

/// (path, method, status, link name, target operation, its parameters).
type Link = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const LINKS: &[Link] = &[
    (
        "/api/v1/cases",
        "post",
        "201",
        "GetCase",
        "get_case",
        &[("id", "$response.body#/id")],
    ),
    (
        "/api/v1/cases",
        "post",
        "201",
        "ListDocuments",
        "list_documents",
        &[("id", "$response.body#/id")],
    ),
    (
        "/api/v1/cases",
        "post",
        "201",
        "UploadDocument",
        "upload_document",
        &[("id", "$response.body#/id")],
    ),
    (
        "/api/v1/cases",
        "post",
        "201",
        "FireFirstAction",
        "fire_transition",
        &[("id", "$response.body#/id"), ("name", "$response.body#/actions/0/name")],
    ),
    (
        "/api/v1/cases",
        "get",
        "200",
        "GetCase",
        "get_case",
        &[("id", "$response.body#/cases/0/id")],
    ),
    (
        "/api/v1/cases",
        "get",
        "200",
        "ListDocuments",
        "list_documents",
        &[("id", "$response.body#/cases/0/id")],
    ),
    (
        "/api/v1/cases/{id}/documents",
        "get",
        "200",
        "GetDocument",
        "get_document",
        &[("id", "$response.body#/documents/0/id")],
    ),
    (
        "/api/v1/emails",
        "get",
        "200",
        "ResendEmail",
        "resend_email",
        &[("id", "$response.body#/0/id")],
    ),
    (
        "/api/v1/students/{id}",
        "put",
        "201",
        "GetDestination",
        "get_destination",
        &[("id", "$request.path.id")],
    ),
];

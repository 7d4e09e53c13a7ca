//! `AdmissionReview` bytes in, `AdmissionReview` JSON out. Every input gets an answer:
//! malformed JSON, a review of another version, of another kind than Pod, or a pod that
//! does not parse get an `AdmissionResponse` with `allowed: false` and the reason
//! (with the request's uid when it can be read), never a panic or a bare 500.

use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use kube_core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube_core::{DynamicObject, Status};
use serde_json::Value;

use crate::inject::{self, Outcome};
use crate::options::InjectorConfig;

const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";

/// The answer to one review and what the log may say about it (names only).
#[derive(Debug)]
pub struct Decision {
    /// The response `AdmissionReview`, ready to send.
    pub review: Value,
    /// `injected`, `skipped`, `denied` or `error`.
    pub verdict: &'static str,
    /// Why (no pod spec content beyond names).
    pub reason: String,
    pub namespace: String,
    /// Pod name, or `<generateName>*` for pods named by the API server.
    pub pod: String,
    pub uid: String,
}

/// Answer one review.
pub fn review(body: &[u8], cfg: &InjectorConfig) -> Decision {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return error("", "", "", format!("malformed AdmissionReview: not JSON: {e}")),
    };
    // Best effort, so that even a review we cannot read is answered with its uid (the API
    // server drops answers whose uid does not match).
    let uid = value.pointer("/request/uid").and_then(Value::as_str).unwrap_or_default().to_string();
    let namespace = value.pointer("/request/namespace").and_then(Value::as_str).unwrap_or_default().to_string();
    let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != "AdmissionReview" || api_version != REVIEW_API_VERSION {
        return error(
            &uid,
            &namespace,
            "",
            format!(
                "malformed AdmissionReview: expected apiVersion {REVIEW_API_VERSION} kind AdmissionReview, got apiVersion \"{api_version}\" kind \"{kind}\" (the webhook configuration must say admissionReviewVersions: [\"v1\"])"
            ),
        );
    }
    let raw_object = value.pointer("/request/object").cloned();
    let parsed: AdmissionReview<DynamicObject> = match serde_json::from_value(value) {
        Ok(r) => r,
        Err(e) => return error(&uid, &namespace, "", format!("malformed AdmissionReview: {e}")),
    };
    let req: AdmissionRequest<DynamicObject> = match parsed.try_into() {
        Ok(r) => r,
        Err(_) => return error(&uid, &namespace, "", "malformed AdmissionReview: no request".into()),
    };
    let namespace = req.namespace.clone().unwrap_or_default();
    let is_pod = req.kind.group.is_empty() && req.kind.version == "v1" && req.kind.kind == "Pod";
    if !is_pod || req.resource.resource != "pods" || req.sub_resource.as_deref().is_some_and(|s| !s.is_empty()) {
        let gv = if req.kind.group.is_empty() {
            req.kind.version.clone()
        } else {
            format!("{}/{}", req.kind.group, req.kind.version)
        };
        let sub = req
            .sub_resource
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| format!(" (subresource {s})"))
            .unwrap_or_default();
        return error(
            &req.uid,
            &namespace,
            &req.name,
            format!(
                "this webhook only handles v1 Pods, not {gv} {}{sub}: check the rules of the MutatingWebhookConfiguration",
                req.kind.kind
            ),
        );
    }
    let pod_name = |pod: Option<&Pod>| -> String {
        if !req.name.is_empty() {
            return req.name.clone();
        }
        let meta = pod.map(|p| &p.metadata);
        match (meta.and_then(|m| m.name.clone()), meta.and_then(|m| m.generate_name.clone())) {
            (Some(n), _) if !n.is_empty() => n,
            (_, Some(g)) => format!("{g}*"),
            _ => String::new(),
        }
    };
    if !matches!(req.operation, Operation::Create) {
        return answer(
            &req,
            AdmissionResponse::from(&req),
            "skipped",
            format!("operation {:?}", req.operation),
            pod_name(None),
        );
    }
    let Some(raw) = raw_object.filter(|o| !o.is_null()) else {
        return error(
            &req.uid,
            &namespace,
            &pod_name(None),
            "malformed AdmissionReview: request.object is missing".into(),
        );
    };
    let pod: Pod = match serde_json::from_value(raw) {
        Ok(p) => p,
        Err(e) => {
            return error(&req.uid, &namespace, &pod_name(None), format!("the pod does not parse as a v1 Pod: {e}"))
        }
    };
    let name = pod_name(Some(&pod));
    let base = AdmissionResponse::from(&req);
    match inject::inject(&pod, cfg) {
        Outcome::Patch { patch, warnings, summary } => {
            let mut resp = match base.with_patch(patch) {
                Ok(r) => r,
                Err(e) => return error(&req.uid, &namespace, &name, format!("internal error: {e}")),
            };
            if !warnings.is_empty() {
                resp.warnings = Some(warnings);
            }
            resp.audit_annotations.insert("decision".into(), "injected".into());
            answer(&req, resp, "injected", summary, name)
        }
        Outcome::Skip { reason, warning } => {
            let mut resp = base;
            if let Some(w) = warning {
                resp.warnings = Some(vec![w]);
                resp.audit_annotations.insert("decision".into(), "skipped".into());
                resp.audit_annotations.insert("reason".into(), reason.clone());
            }
            answer(&req, resp, "skipped", reason, name)
        }
        Outcome::Deny { message } => {
            let mut resp = base.deny(&message);
            resp.result = Status::failure(&message, "BadRequest").with_code(400);
            answer(&req, resp, "denied", message, name)
        }
    }
}

fn answer(
    req: &AdmissionRequest<DynamicObject>,
    resp: AdmissionResponse,
    verdict: &'static str,
    reason: String,
    pod: String,
) -> Decision {
    Decision {
        review: to_json(resp.into_review()),
        verdict,
        reason,
        namespace: req.namespace.clone().unwrap_or_default(),
        pod,
        uid: req.uid.clone(),
    }
}

/// An `AdmissionResponse` error for a review we cannot act on.
fn error(uid: &str, namespace: &str, pod: &str, message: String) -> Decision {
    let mut resp = AdmissionResponse::invalid(&message);
    resp.uid = uid.to_string();
    resp.result = Status::failure(&message, "BadRequest").with_code(400);
    Decision {
        review: to_json(resp.into_review()),
        verdict: "error",
        reason: message,
        namespace: namespace.to_string(),
        pod: pod.to_string(),
        uid: uid.to_string(),
    }
}

/// Serialize a response review the way the API server reads it.
///
/// `AdmissionResponse.patch` is a `Vec<u8>`, which serde_json writes as an array of
/// numbers; Kubernetes' `patch` is `[]byte`, which Go's JSON encoding (and so the API
/// server) reads only as a base64 string. So the array is replaced by its base64 here.
pub fn to_json(review: AdmissionReview<DynamicObject>) -> Value {
    let mut v = serde_json::to_value(&review).unwrap_or_else(|e| {
        serde_json::json!({
            "apiVersion": REVIEW_API_VERSION, "kind": "AdmissionReview",
            "response": { "uid": "", "allowed": false, "status": { "message": format!("internal error: {e}"), "code": 500 } }
        })
    });
    if let Some(patch) = v.pointer_mut("/response/patch") {
        if let Value::Array(items) = patch {
            let bytes: Option<Vec<u8>> = items.iter().map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
            if let Some(bytes) = bytes {
                *patch = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
        }
    }
    v
}

/// Decode the `patch` of a response review (base64 JSON Patch), for tests and tools.
pub fn response_patch(review: &Value) -> Result<Option<json_patch::Patch>, String> {
    let Some(p) = review.pointer("/response/patch") else {
        return Ok(None);
    };
    let text = p.as_str().ok_or("response.patch is not a string (the API server expects base64)")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("response.patch: {e}"))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("response.patch is not a JSON Patch: {e}"))
}

//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, the same wire
//! format) as a descriptor source: the messages of one `ServerReflectionInfo`
//! stream that collects the files defining the configured services and every
//! file they import. With no service configured, the stream first lists the
//! server's services (`list_services`) and then collects those. Pure: the
//! filter moves the bytes.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;

/// The reflection services, in the order they are tried.
pub const SERVICES: [&str; 2] = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
/// The bidi method of both.
pub const METHOD: &str = "ServerReflectionInfo";

#[derive(Clone, PartialEq, Message)]
struct ServerReflectionRequest {
    #[prost(string, tag = "1")]
    host: String,
    #[prost(oneof = "MessageRequest", tags = "3, 4, 7")]
    message_request: Option<MessageRequest>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum MessageRequest {
    #[prost(string, tag = "3")]
    FileByFilename(String),
    #[prost(string, tag = "4")]
    FileContainingSymbol(String),
    #[prost(string, tag = "7")]
    ListServices(String),
}

#[derive(Clone, PartialEq, Message)]
struct ServerReflectionResponse {
    #[prost(oneof = "MessageResponse", tags = "4, 6, 7")]
    message_response: Option<MessageResponse>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum MessageResponse {
    #[prost(message, tag = "4")]
    FileDescriptorResponse(FileDescriptorResponse),
    #[prost(message, tag = "6")]
    /// `list_services_response`.
    ServiceList(ListServiceResponse),
    #[prost(message, tag = "7")]
    ErrorResponse(ErrorResponse),
}

#[derive(Clone, PartialEq, Message)]
struct ListServiceResponse {
    #[prost(message, repeated, tag = "1")]
    service: Vec<ServiceResponse>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceResponse {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, Message)]
struct FileDescriptorResponse {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file_descriptor_proto: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct ErrorResponse {
    #[prost(int32, tag = "1")]
    error_code: i32,
    #[prost(string, tag = "2")]
    error_message: String,
}

/// One reflection exchange in progress: what was asked, what came back.
#[derive(Debug, Default)]
pub struct ReflectionFetch {
    /// Serialized `FileDescriptorProto`s by file name.
    files: BTreeMap<String, Vec<u8>>,
    /// File names asked for (or received), so that none is asked twice.
    asked: BTreeSet<String>,
    /// Requests sent and not answered yet (the server answers each, in order).
    outstanding: usize,
    /// The services whose files are collected: the configured ones, or those the server listed.
    services: Vec<String>,
}

/// Whether a listed service is one of gRPC's own (reflection, health, channelz, ...:
/// the `grpc.` package namespace is reserved for them), which are not transcoded
/// when the services come from the server's list.
pub fn is_grpc_infrastructure(service: &str) -> bool {
    service.starts_with("grpc.")
}

impl ReflectionFetch {
    /// Starts an exchange: the requests to send first (one per service, or one
    /// `list_services` when `services` is empty).
    pub fn new(services: &[String]) -> (Self, Vec<Vec<u8>>) {
        if services.is_empty() {
            let fetch = ReflectionFetch { outstanding: 1, ..Default::default() };
            return (fetch, vec![request(MessageRequest::ListServices(String::new()))]);
        }
        let requests: Vec<Vec<u8>> =
            services.iter().map(|s| request(MessageRequest::FileContainingSymbol(s.clone()))).collect();
        let fetch = ReflectionFetch { outstanding: requests.len(), services: services.to_vec(), ..Default::default() };
        (fetch, requests)
    }

    /// The services the set is collected for (known once the server listed them).
    pub fn services(&self) -> &[String] {
        &self.services
    }

    /// Takes one response; returns the further requests to send (missing imports,
    /// or the files of the services the server listed).
    pub fn on_response(&mut self, message: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        let response = ServerReflectionResponse::decode(message)
            .map_err(|e| format!("a reflection response does not decode: {e}"))?;
        self.outstanding = self.outstanding.saturating_sub(1);
        let files = match response.message_response {
            Some(MessageResponse::ServiceList(list)) => return self.on_service_list(list),
            Some(MessageResponse::FileDescriptorResponse(r)) => r.file_descriptor_proto,
            Some(MessageResponse::ErrorResponse(e)) => {
                return Err(format!("the reflection service answered error {}: {}", e.error_code, e.error_message))
            }
            None => return Err("the reflection service answered neither files nor an error".into()),
        };
        let mut imports = Vec::new();
        for bytes in files {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())
                .map_err(|e| format!("a FileDescriptorProto does not decode: {e}"))?;
            imports.extend(file.dependency.iter().cloned());
            self.asked.insert(file.name().to_string());
            self.files.entry(file.name().to_string()).or_insert(bytes);
        }
        // Servers differ: some send every import at once (tonic), some only the file asked for.
        let mut more = Vec::new();
        for name in imports {
            if self.asked.insert(name.clone()) {
                more.push(request(MessageRequest::FileByFilename(name)));
            }
        }
        self.outstanding += more.len();
        Ok(more)
    }

    /// The server's services, minus gRPC's own: ask for the files defining each.
    fn on_service_list(&mut self, list: ListServiceResponse) -> Result<Vec<Vec<u8>>, String> {
        if !self.services.is_empty() {
            return Err("the reflection service sent a service list nobody asked for".into());
        }
        let all: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        let mut services: Vec<String> = all.iter().filter(|s| !is_grpc_infrastructure(s)).cloned().collect();
        services.sort();
        services.dedup();
        if services.is_empty() {
            return Err(format!(
                "the reflection service lists no service to transcode (it lists: {}; gRPC's own grpc.* services are left out)",
                if all.is_empty() { "nothing".to_string() } else { all.join(", ") }
            ));
        }
        let more: Vec<Vec<u8>> =
            services.iter().map(|s| request(MessageRequest::FileContainingSymbol(s.clone()))).collect();
        self.outstanding += more.len();
        self.services = services;
        Ok(more)
    }

    /// Every request was answered: the set can be built.
    pub fn is_complete(&self) -> bool {
        self.outstanding == 0
    }

    /// The `FileDescriptorSet` of everything received (see [`crate::source::descriptor_set_from_files`]).
    pub fn descriptor_set(&self) -> Result<Vec<u8>, String> {
        let files: Vec<Vec<u8>> = self.files.values().cloned().collect();
        crate::source::descriptor_set_from_files(&files)
    }
}

fn request(message: MessageRequest) -> Vec<u8> {
    ServerReflectionRequest { host: String::new(), message_request: Some(message) }.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, deps: &[&str]) -> Vec<u8> {
        prost_types::FileDescriptorProto {
            name: Some(name.into()),
            dependency: deps.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn files_response(files: Vec<Vec<u8>>) -> Vec<u8> {
        ServerReflectionResponse {
            message_response: Some(MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                file_descriptor_proto: files,
            })),
        }
        .encode_to_vec()
    }

    #[test]
    fn follows_imports_the_server_did_not_send() {
        let (mut fetch, first) = ReflectionFetch::new(&["a.A".to_string()]);
        let asked = ServerReflectionRequest::decode(first[0].as_slice()).unwrap();
        assert_eq!(asked.message_request, Some(MessageRequest::FileContainingSymbol("a.A".into())));
        // Like grpcio: only the file itself.
        let more = fetch.on_response(&files_response(vec![file("a.proto", &["b.proto", "c.proto"])])).unwrap();
        let names: Vec<_> =
            more.iter().map(|m| ServerReflectionRequest::decode(m.as_slice()).unwrap().message_request).collect();
        assert_eq!(
            names,
            [
                Some(MessageRequest::FileByFilename("b.proto".into())),
                Some(MessageRequest::FileByFilename("c.proto".into()))
            ]
        );
        assert!(!fetch.is_complete());
        // Like tonic: a file with its import at once; c.proto is not asked twice.
        assert!(fetch
            .on_response(&files_response(vec![file("b.proto", &["c.proto"]), file("c.proto", &[])]))
            .unwrap()
            .is_empty());
        assert!(!fetch.is_complete());
        assert!(fetch.on_response(&files_response(vec![file("c.proto", &[])])).unwrap().is_empty());
        assert!(fetch.is_complete());
        let set = prost_types::FileDescriptorSet::decode(fetch.descriptor_set().unwrap().as_slice()).unwrap();
        let names: Vec<_> = set.file.iter().map(|f| f.name().to_string()).collect();
        assert_eq!(names, ["c.proto", "b.proto", "a.proto"]);
    }

    fn list_response(names: &[&str]) -> Vec<u8> {
        ServerReflectionResponse {
            message_response: Some(MessageResponse::ServiceList(ListServiceResponse {
                service: names.iter().map(|n| ServiceResponse { name: n.to_string() }).collect(),
            })),
        }
        .encode_to_vec()
    }

    #[test]
    fn without_services_lists_them_first_and_leaves_out_grpc_own() {
        let (mut fetch, first) = ReflectionFetch::new(&[]);
        let asked = ServerReflectionRequest::decode(first[0].as_slice()).unwrap();
        assert_eq!(asked.message_request, Some(MessageRequest::ListServices(String::new())));
        assert!(fetch.services().is_empty());
        let more = fetch
            .on_response(&list_response(&[
                "shop.v1.Shop",
                "grpc.reflection.v1alpha.ServerReflection",
                "grpc.health.v1.Health",
                "a.v1.Admin",
            ]))
            .unwrap();
        assert_eq!(fetch.services(), ["a.v1.Admin", "shop.v1.Shop"]);
        let names: Vec<_> =
            more.iter().map(|m| ServerReflectionRequest::decode(m.as_slice()).unwrap().message_request).collect();
        assert_eq!(
            names,
            [
                Some(MessageRequest::FileContainingSymbol("a.v1.Admin".into())),
                Some(MessageRequest::FileContainingSymbol("shop.v1.Shop".into()))
            ]
        );
        assert!(!fetch.is_complete());
        assert!(fetch.on_response(&files_response(vec![file("a.proto", &[])])).unwrap().is_empty());
        assert!(fetch.on_response(&files_response(vec![file("shop.proto", &[])])).unwrap().is_empty());
        assert!(fetch.is_complete());

        let (mut only_own, _) = ReflectionFetch::new(&[]);
        let e = only_own.on_response(&list_response(&["grpc.reflection.v1.ServerReflection"])).unwrap_err();
        assert!(e.contains("no service to transcode") && e.contains("grpc.reflection.v1.ServerReflection"), "{e}");
        let (mut named, _) = ReflectionFetch::new(&["a.A".to_string()]);
        assert!(named.on_response(&list_response(&["a.A"])).is_err());
    }

    #[test]
    fn errors_and_garbage_are_reported() {
        let (mut fetch, _) = ReflectionFetch::new(&["a.A".to_string()]);
        let error = ServerReflectionResponse {
            message_response: Some(MessageResponse::ErrorResponse(ErrorResponse {
                error_code: 5,
                error_message: "symbol not found".into(),
            })),
        }
        .encode_to_vec();
        let e = fetch.on_response(&error).unwrap_err();
        assert!(e.contains("symbol not found"), "{e}");
        assert!(fetch.on_response(&[0xff, 0xff]).is_err());
    }
}

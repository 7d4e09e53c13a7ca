//! Descriptor sets that come from elsewhere than the configuration itself
//! (rust-grpc-proxy extensions to Envoy's `GrpcJsonTranscoder`): where to
//! fetch them, how often, and how a fetched set is checked and identified.
//! Fetching is the filter's business (it needs the host); everything here is pure.

use std::time::Duration;

use prost::Message;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::error::ConfigError;
use crate::response::{Printer, JSON};
use crate::status::{Code, Status};
use crate::HttpReply;

/// `descriptor_url`: a `FileDescriptorSet` served over HTTP(S) by a cluster of Envoy's.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DescriptorUrl {
    /// The Envoy cluster that serves the set (TLS, if any, is that cluster's transport socket).
    pub cluster: String,
    /// `http://host[:port]/path` or `https://...`: the host becomes `:authority`, the rest `:path`.
    pub url: String,
    /// How long one fetch may take (Envoy's Duration JSON, `"5s"`); 5 s by default.
    #[serde(default, deserialize_with = "duration_field")]
    pub timeout: Option<Duration>,
}

/// Default time one fetch of the descriptor set may take.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

impl DescriptorUrl {
    /// The `:authority` and `:path` of the GET, or why the URL is unusable.
    pub fn authority_and_path(&self) -> Result<(&str, &str), String> {
        let rest = self
            .url
            .strip_prefix("http://")
            .or_else(|| self.url.strip_prefix("https://"))
            .ok_or_else(|| format!("{:?} must start with http:// or https://", self.url))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{:?} names no host", self.url));
        }
        Ok((authority, path))
    }

    /// The fetch timeout in force.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_FETCH_TIMEOUT)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster.is_empty() {
            return Err(ConfigError::field(
                "descriptor_url.cluster",
                "must name the Envoy cluster that serves the set",
            ));
        }
        self.authority_and_path().map(|_| ()).map_err(|e| ConfigError::field("descriptor_url.url", e))
    }
}

/// `descriptor_reflection`: the gRPC server reflection service of a cluster
/// (`grpc.reflection.v1`, else `v1alpha`), asked for the configured `services`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DescriptorReflection {
    /// The Envoy cluster of the gRPC server (HTTP/2), often the backend's own.
    pub cluster: String,
    /// How long one exchange may take (Duration JSON); 5 s by default.
    #[serde(default, deserialize_with = "duration_field")]
    pub timeout: Option<Duration>,
}

impl DescriptorReflection {
    /// The exchange timeout in force.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_FETCH_TIMEOUT)
    }
}

/// Reads Envoy's `google.protobuf.Duration` JSON (`"1.5s"`), or a number of seconds.
pub(crate) fn duration_field<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }
    let seconds = match Option::<Raw>::deserialize(de)? {
        None => return Ok(None),
        Some(Raw::Seconds(s)) => s,
        Some(Raw::Text(text)) => text.strip_suffix('s').and_then(|n| n.parse::<f64>().ok()).ok_or_else(|| {
            serde::de::Error::custom(format!("{text:?} is not a duration such as \"30s\" or \"0.5s\""))
        })?,
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 * 365.0 {
        return Err(serde::de::Error::custom(format!("{seconds} s is not a duration above 0 and below a year")));
    }
    Ok(Some(Duration::from_secs_f64(seconds)))
}

/// The SHA-256 of a descriptor set's bytes: two sets with the same digest are the same set.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The digest of what a fetch loads: the set, and the services to transcode when
/// the server listed them (a service dropped from the list while its file stays in
/// the set is a change too). With configured services, the set's own SHA-256.
pub fn fetch_digest(bytes: &[u8], listed_services: Option<&[String]>) -> [u8; 32] {
    let Some(services) = listed_services else { return digest(bytes) };
    let mut hash = Sha256::new();
    hash.update(bytes);
    for service in services {
        hash.update(b"\n");
        hash.update(service.as_bytes());
    }
    hash.finalize().into()
}

/// A digest as lower-case hex (how the filter logs it).
pub fn digest_hex(digest: &[u8; 32]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 6 bytes of a digest as a number: the `descriptor.digest` gauge
/// (Envoy gauges are integers; 48 bits print exactly wherever stats go).
pub fn digest_gauge(digest: &[u8; 32]) -> u64 {
    digest[..6].iter().fold(0u64, |n, b| (n << 8) | u64::from(*b))
}

/// The answer to a transcodable request while no descriptor set is loaded yet: 503 UNAVAILABLE.
pub fn not_loaded_reply(source: &str) -> HttpReply {
    let status = Status::new(
        Code::Unavailable,
        format!("rust_grpc_proxy: no descriptor set loaded yet from {source}; retrying"),
    );
    HttpReply {
        status: 503,
        headers: vec![("content-type".into(), JSON.into())],
        body: status.to_json(None, &Printer::new(&crate::config::PrintOptions::default())),
    }
}

/// The two fields of a `FileDescriptorProto` the ordering needs. Decoding the
/// whole file with `prost_types` and encoding it again would drop what prost
/// does not know, such as the `google.api.http` options: files are kept as sent.
#[derive(Clone, PartialEq, Message)]
struct FileHeader {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, repeated, tag = "3")]
    dependency: Vec<String>,
}

/// Builds one `FileDescriptorSet` (what `proto_descriptor_bin` holds) from
/// serialized `FileDescriptorProto`s, as gRPC server reflection sends them:
/// deduplicated by file name, each file after its dependencies, each file's
/// bytes unchanged. Fails when a file cannot be decoded or a dependency is missing.
pub fn descriptor_set_from_files(files: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    use std::collections::BTreeMap;
    let mut by_name: BTreeMap<String, (FileHeader, &[u8])> = BTreeMap::new();
    for bytes in files {
        let header =
            FileHeader::decode(bytes.as_slice()).map_err(|e| format!("a FileDescriptorProto does not decode: {e}"))?;
        by_name.entry(header.name.clone().unwrap_or_default()).or_insert((header, bytes));
    }
    // Depth-first, dependencies first; `state` also stops cycles.
    let mut ordered: Vec<&[u8]> = Vec::with_capacity(by_name.len());
    let mut state: BTreeMap<&str, bool> = BTreeMap::new(); // false: in progress, true: done
    fn visit<'a>(
        name: &'a str,
        by_name: &'a BTreeMap<String, (FileHeader, &'a [u8])>,
        state: &mut BTreeMap<&'a str, bool>,
        ordered: &mut Vec<&'a [u8]>,
    ) -> Result<(), String> {
        match state.get(name) {
            Some(true) => return Ok(()),
            Some(false) => return Err(format!("import cycle through {name:?}")),
            None => {}
        }
        let (header, bytes) =
            by_name.get(name).ok_or_else(|| format!("missing file {name:?} (a dependency nobody sent)"))?;
        state.insert(name, false);
        for dep in &header.dependency {
            visit(dep, by_name, state, ordered)?;
        }
        state.insert(name, true);
        ordered.push(bytes);
        Ok(())
    }
    for name in by_name.keys() {
        visit(name, &by_name, &mut state, &mut ordered)?;
    }
    // FileDescriptorSet { repeated FileDescriptorProto file = 1; }, written field by field.
    let mut set = Vec::with_capacity(ordered.iter().map(|f| f.len() + 6).sum());
    for file in ordered {
        prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut set);
        prost::encoding::encode_varint(file.len() as u64, &mut set);
        set.extend_from_slice(file);
    }
    Ok(set)
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

    #[test]
    fn reflection_files_are_ordered_after_their_dependencies_and_deduplicated() {
        let set = descriptor_set_from_files(&[
            file("a.proto", &["b.proto"]),
            file("b.proto", &["c.proto"]),
            file("c.proto", &[]),
            file("b.proto", &["c.proto"]),
        ])
        .unwrap();
        let set = prost_types::FileDescriptorSet::decode(set.as_slice()).unwrap();
        let names: Vec<_> = set.file.iter().map(|f| f.name().to_string()).collect();
        assert_eq!(names, ["c.proto", "b.proto", "a.proto"]);
    }

    #[test]
    fn a_listed_service_is_part_of_the_fetch_digest() {
        let set = b"same set";
        let both = ["a.A".to_string(), "b.B".to_string()];
        assert_eq!(fetch_digest(set, None), digest(set));
        assert_ne!(fetch_digest(set, Some(&both)), fetch_digest(set, Some(&both[..1])));
        assert_eq!(fetch_digest(set, Some(&both)), fetch_digest(set, Some(&both.clone())));
    }

    #[test]
    fn files_keep_options_prost_does_not_know() {
        // a.proto whose MethodOptions-like bytes carry an unknown field (as google.api.http is).
        let mut a = file("a.proto", &[]);
        a.extend_from_slice(&[0xc2, 0x3e, 0x02, 0x08, 0x01]); // field 1000, length-delimited, 2 bytes
        let set = descriptor_set_from_files(&[a.clone()]).unwrap();
        assert!(set.ends_with(&a), "the file's bytes must be kept as sent");
    }

    #[test]
    fn missing_dependency_and_garbage_are_refused() {
        let e = descriptor_set_from_files(&[file("a.proto", &["gone.proto"])]).unwrap_err();
        assert!(e.contains("gone.proto"), "{e}");
        assert!(descriptor_set_from_files(&[vec![0xff, 0xff, 0xff]]).is_err());
        let e = descriptor_set_from_files(&[file("a.proto", &["b.proto"]), file("b.proto", &["a.proto"])]).unwrap_err();
        assert!(e.contains("cycle"), "{e}");
    }

    #[test]
    fn urls_split_into_authority_and_path() {
        let u = |url: &str| DescriptorUrl { cluster: "c".into(), url: url.into(), timeout: None };
        assert_eq!(u("http://desc:8000/sets/a.pb?v=1").authority_and_path().unwrap(), ("desc:8000", "/sets/a.pb?v=1"));
        assert_eq!(u("https://desc").authority_and_path().unwrap(), ("desc", "/"));
        assert!(u("ftp://desc/x").authority_and_path().is_err());
        assert!(u("http:///x").authority_and_path().is_err());
        assert!(u("http://h/x").validate().is_ok());
        assert!(DescriptorUrl { cluster: String::new(), ..u("http://h/x") }.validate().is_err());
    }

    #[test]
    fn digests_tell_sets_apart() {
        let a = digest(b"one");
        assert_eq!(a, digest(b"one"));
        assert_ne!(a, digest(b"two"));
        assert_eq!(digest_hex(&a).len(), 64);
        assert_eq!(format!("{:012x}", digest_gauge(&a)), digest_hex(&a)[..12]);
    }

    #[test]
    fn not_loaded_is_a_503_json_status() {
        let reply = not_loaded_reply("http://desc/x");
        assert_eq!(reply.status, 503);
        let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["code"], 14);
        assert!(body["message"].as_str().unwrap().contains("http://desc/x"));
    }
}

#[cfg(test)]
mod config_tests {
    use crate::TranscoderConfig;

    #[test]
    fn descriptor_url_replaces_proto_descriptor_bin_and_refresh_needs_it() {
        let c = TranscoderConfig::from_json(
            br#"{"services":["a.B"],"descriptor_url":{"cluster":"d","url":"http://d/set.pb","timeout":"2s"},"refresh_interval":"1.5s","pass_through_until_loaded":true}"#,
        )
        .unwrap();
        assert_eq!(c.refresh_interval, Some(std::time::Duration::from_millis(1500)));
        assert_eq!(c.descriptor_url.unwrap().timeout(), std::time::Duration::from_secs(2));
        assert!(c.pass_through_until_loaded);
        let e = TranscoderConfig::from_json(br#"{"services":["a.B"],"refresh_interval":"1s"}"#).unwrap_err();
        assert!(e.to_string().contains("descriptor_url"), "{e}");
        let e = TranscoderConfig::from_json(br#"{"services":["a.B"],"descriptor_url":{"cluster":"d","url":"d/x"}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("descriptor_url.url"), "{e}");
        let e = TranscoderConfig::from_json(
            br#"{"services":["a.B"],"descriptor_url":{"cluster":"d","url":"http://d/x"},"refresh_interval":"-1s"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("refresh_interval"), "{e}");
        let c =
            TranscoderConfig::from_json(br#"{"services":["a.B"],"descriptor_reflection":{"cluster":"grpc_backend"}}"#)
                .unwrap();
        assert_eq!(c.descriptor_reflection.unwrap().timeout(), super::DEFAULT_FETCH_TIMEOUT);
        let e = TranscoderConfig::from_json(
            br#"{"services":["a.B"],"descriptor_reflection":{"cluster":"g"},"descriptor_url":{"cluster":"d","url":"http://d/x"}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("only one"), "{e}");
        // Still required when nothing else names a source.
        assert!(TranscoderConfig::from_json(br#"{"services":["a.B"]}"#).is_err());
        // No services: only with reflection alone (the server lists them).
        let c = TranscoderConfig::from_json(br#"{"descriptor_reflection":{"cluster":"app"},"refresh_interval":"60s"}"#)
            .unwrap();
        assert!(c.services.is_empty());
        let e = TranscoderConfig::from_json(br#"{"descriptor_url":{"cluster":"d","url":"http://d/x"}}"#).unwrap_err();
        assert!(e.to_string().contains("services"), "{e}");
        let e = TranscoderConfig::from_json(
            br#"{"descriptor_reflection":{"cluster":"app"},"proto_descriptor_bin":"AA=="}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("services"), "{e}");
    }
}

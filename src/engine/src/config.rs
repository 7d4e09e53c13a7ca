//! The filter configuration: the fields of Envoy's
//! `envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder`,
//! read from JSON the way Envoy reads its YAML, so a native setup moves over as is.

use serde::Deserialize;

use crate::error::ConfigError;
use crate::percent::UrlUnescapeSpec;

/// Envoy's `GrpcJsonTranscoder` message, with the descriptor set inline.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TranscoderConfig {
    /// A file path in Envoy's config; a Wasm VM cannot read files, so it is refused with advice.
    #[serde(alias = "protoDescriptor")]
    pub proto_descriptor: Option<String>,
    /// The `FileDescriptorSet` (with imports), base64 in JSON as in Envoy's YAML.
    #[serde(alias = "protoDescriptorBin", deserialize_with = "base64_field")]
    pub proto_descriptor_bin: Option<Vec<u8>>,
    /// Fully qualified service names to transcode. May be empty with
    /// `descriptor_reflection` alone: then every service the server lists, but gRPC's own.
    pub services: Vec<String>,
    /// How JSON answers are printed.
    #[serde(alias = "printOptions")]
    pub print_options: PrintOptions,
    /// Keep routing on the REST path instead of the gRPC path (`/pkg.Service/Method`).
    #[serde(alias = "matchIncomingRequestRoute")]
    pub match_incoming_request_route: bool,
    /// Query parameters that never bind to a field.
    #[serde(alias = "ignoredQueryParameters")]
    pub ignored_query_parameters: Vec<String>,
    /// Route `POST /pkg.Service/Method` for methods without `google.api.http`.
    #[serde(alias = "autoMapping")]
    pub auto_mapping: bool,
    /// Drop query parameters that name no field instead of refusing the request.
    #[serde(alias = "ignoreUnknownQueryParameters")]
    pub ignore_unknown_query_parameters: bool,
    /// Answer gRPC errors with a JSON `google.rpc.Status` body.
    #[serde(alias = "convertGrpcStatus")]
    pub convert_grpc_status: bool,
    /// Which percent-escapes in path variables are decoded.
    #[serde(alias = "urlUnescapeSpec", deserialize_with = "unescape_spec")]
    pub url_unescape_spec: UrlUnescapeSpec,
    /// Decode `+` as a space in query parameters.
    #[serde(alias = "queryParamUnescapePlus")]
    pub query_param_unescape_plus: bool,
    /// Match `/path:verb` against templates even when no template registers that verb.
    #[serde(alias = "matchUnregisteredCustomVerb")]
    pub match_unregistered_custom_verb: bool,
    /// What the filter refuses instead of passing on untranscoded.
    #[serde(alias = "requestValidationOptions")]
    pub request_validation_options: RequestValidationOptions,
    /// Accept enum names in any letter case.
    #[serde(alias = "caseInsensitiveEnumParsing")]
    pub case_insensitive_enum_parsing: bool,
    /// Largest request body transcoded, in bytes (a `UInt32Value` in Envoy).
    #[serde(alias = "maxRequestBodySize", deserialize_with = "uint32_value")]
    pub max_request_body_size: Option<u32>,
    /// Largest gRPC response buffered for transcoding, in bytes.
    #[serde(alias = "maxResponseBodySize", deserialize_with = "uint32_value")]
    pub max_response_body_size: Option<u32>,
    /// Unknown query parameters are kept in the request's metadata (Envoy's
    /// `capture_unknown_query_parameters`); accepted for compatibility, has no effect yet.
    #[serde(alias = "captureUnknownQueryParameters")]
    pub capture_unknown_query_parameters: bool,
    /// (rust-grpc-proxy) Fetch the descriptor set over HTTP(S) from a cluster,
    /// instead of (or after) `proto_descriptor_bin`.
    #[serde(alias = "descriptorUrl")]
    pub descriptor_url: Option<crate::source::DescriptorUrl>,
    /// (rust-grpc-proxy) Read the descriptor set from a cluster's gRPC server reflection service.
    #[serde(alias = "descriptorReflection")]
    pub descriptor_reflection: Option<crate::source::DescriptorReflection>,
    /// (rust-grpc-proxy) Re-fetch `descriptor_url` this often and swap in a
    /// changed set (Duration JSON, `"30s"`); unset: fetch until the first success only.
    #[serde(alias = "refreshInterval", deserialize_with = "crate::source::duration_field")]
    pub refresh_interval: Option<std::time::Duration>,
    /// (rust-grpc-proxy) Until the first fetched set is loaded, pass requests
    /// through untouched instead of answering 503.
    #[serde(alias = "passThroughUntilLoaded")]
    pub pass_through_until_loaded: bool,
    /// (rust-grpc-proxy, Wasm build) `envoy/companion.lua` runs right after the
    /// filter: a request without a body hands it its gRPC frame and goes
    /// through the router, instead of the filter making the call itself.
    #[serde(alias = "luaCompanion")]
    pub lua_companion: bool,
}

/// Envoy's `GrpcJsonTranscoder.PrintOptions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrintOptions {
    /// Pretty-print with two-space indentation.
    #[serde(alias = "addWhitespace")]
    pub add_whitespace: bool,
    /// Print fields that hold their default value.
    #[serde(alias = "alwaysPrintPrimitiveFields")]
    pub always_print_primitive_fields: bool,
    /// Print enums as numbers.
    #[serde(alias = "alwaysPrintEnumsAsInts")]
    pub always_print_enums_as_ints: bool,
    /// Print proto field names instead of lowerCamelCase JSON names.
    #[serde(alias = "preserveProtoFieldNames")]
    pub preserve_proto_field_names: bool,
    /// Server streams as newline-delimited JSON instead of one JSON array.
    #[serde(alias = "streamNewlineDelimited")]
    pub stream_newline_delimited: bool,
    /// Server streams as Server-Sent Events.
    #[serde(alias = "streamSseStyleDelimited")]
    pub stream_sse_style_delimited: bool,
}

/// Envoy's `GrpcJsonTranscoder.RequestValidationOptions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestValidationOptions {
    /// Answer 404 for a request that maps to no method instead of passing it on.
    #[serde(alias = "rejectUnknownMethod")]
    pub reject_unknown_method: bool,
    /// Answer 400 for unknown query parameters instead of passing the request on.
    #[serde(alias = "rejectUnknownQueryParameters")]
    pub reject_unknown_query_parameters: bool,
    /// Answer 400 when a path or query binding and the body set the same field differently.
    #[serde(alias = "rejectBindingBodyFieldCollisions")]
    pub reject_binding_body_field_collisions: bool,
}

impl TranscoderConfig {
    /// Parses and checks the plugin configuration JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let text = std::str::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8)?;
        if text.trim().is_empty() {
            return Err(ConfigError::Empty);
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let config: TranscoderConfig = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| ConfigError::Invalid { field: e.path().to_string(), message: e.inner().to_string() })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match (&self.proto_descriptor, &self.proto_descriptor_bin) {
            (Some(_), Some(_)) => return Err(ConfigError::field(
                "proto_descriptor",
                "only one of proto_descriptor and proto_descriptor_bin may be set",
            )),
            (Some(path), None) => return Err(ConfigError::field(
                "proto_descriptor",
                format!("a Wasm filter cannot read the file {path:?}; put its bytes, base64-encoded, in proto_descriptor_bin"),
            )),
            (None, None) if self.descriptor_url.is_some() || self.descriptor_reflection.is_some() => {}
            (None, None) => return Err(ConfigError::field(
                "proto_descriptor_bin",
                "required (or descriptor_url): the base64 FileDescriptorSet (protoc --include_imports --descriptor_set_out)",
            )),
            (None, Some(bytes)) if bytes.is_empty() => {
                return Err(ConfigError::field("proto_descriptor_bin", "is empty"))
            }
            (None, Some(_)) => {}
        }
        if let Some(url) = &self.descriptor_url {
            url.validate()?;
        }
        match (&self.descriptor_url, &self.descriptor_reflection) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::field(
                    "descriptor_reflection",
                    "only one of descriptor_url and descriptor_reflection may be set",
                ))
            }
            (None, Some(r)) if r.cluster.is_empty() => {
                return Err(ConfigError::field(
                    "descriptor_reflection.cluster",
                    "must name the cluster of the gRPC server",
                ))
            }
            (None, None) if self.refresh_interval.is_some() => {
                return Err(ConfigError::field(
                    "refresh_interval",
                    "needs descriptor_url or descriptor_reflection: there is nothing to re-fetch",
                ))
            }
            _ => {}
        }
        // Only reflection can say which services there are; an inline set or a URL's
        // set could, but then an empty list would more likely be a mistake than a wish.
        let listed_by_server = self.descriptor_reflection.is_some() && self.proto_descriptor_bin.is_none();
        if self.services.is_empty() && !listed_by_server {
            return Err(ConfigError::field(
                "services",
                "must list at least one service (package.Service); only with descriptor_reflection alone may it be left out (every service the server lists)",
            ));
        }
        if self.print_options.stream_newline_delimited && self.print_options.stream_sse_style_delimited {
            return Err(ConfigError::field(
                "print_options",
                "stream_newline_delimited and stream_sse_style_delimited cannot both be set",
            ));
        }
        Ok(())
    }
}

/// Reads a base64 string field. The string is decoded where the JSON parser
/// holds it, not copied first: a descriptor set is megabytes, and each VM
/// reads it at load.
fn base64_field<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Vec<u8>>, D::Error> {
    struct Base64;
    impl<'de> serde::de::Visitor<'de> for Base64 {
        type Value = Option<Vec<u8>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a base64 string")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
            de.deserialize_str(self)
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            decode_base64(text).map(Some).map_err(|e| E::custom(format!("not valid base64: {e}")))
        }
    }
    de.deserialize_option(Base64)
}

/// Base64 as Envoy's JSON/YAML loader accepts it: both alphabets, padded or
/// not, whitespace ignored (copied out only when there is some).
fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let cleaned;
    let text = if text.bytes().any(|b| b.is_ascii_whitespace()) {
        cleaned = text.chars().filter(|c| !c.is_ascii_whitespace()).collect::<String>();
        cleaned.as_str()
    } else {
        text
    };
    let trimmed = text.trim_end_matches('=');
    STANDARD_NO_PAD.decode(trimmed).or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
}

fn unescape_spec<'de, D: serde::Deserializer<'de>>(de: D) -> Result<UrlUnescapeSpec, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Spec {
        Name(String),
        Number(i64),
    }
    let spec = match Option::<Spec>::deserialize(de)? {
        None => return Ok(UrlUnescapeSpec::default()),
        Some(spec) => spec,
    };
    match spec {
        Spec::Name(name) => match name.as_str() {
            "ALL_CHARACTERS_EXCEPT_RESERVED" => Ok(UrlUnescapeSpec::AllCharactersExceptReserved),
            "ALL_CHARACTERS_EXCEPT_SLASH" => Ok(UrlUnescapeSpec::AllCharactersExceptSlash),
            "ALL_CHARACTERS" => Ok(UrlUnescapeSpec::AllCharacters),
            other => Err(serde::de::Error::custom(format!(
                "unknown value {other:?}; expected ALL_CHARACTERS_EXCEPT_RESERVED, ALL_CHARACTERS_EXCEPT_SLASH or ALL_CHARACTERS"
            ))),
        },
        Spec::Number(0) => Ok(UrlUnescapeSpec::AllCharactersExceptReserved),
        Spec::Number(1) => Ok(UrlUnescapeSpec::AllCharactersExceptSlash),
        Spec::Number(2) => Ok(UrlUnescapeSpec::AllCharacters),
        Spec::Number(n) => Err(serde::de::Error::custom(format!("unknown value {n}; expected 0, 1 or 2"))),
    }
}

/// Accepts a plain number or `{"value": n}`, as the JSON form of `UInt32Value` allows.
fn uint32_value<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wrapped {
        Plain(u32),
        Text(String),
        Object { value: u32 },
    }
    match Option::<Wrapped>::deserialize(de)? {
        None => Ok(None),
        Some(Wrapped::Plain(n)) | Some(Wrapped::Object { value: n }) => Ok(Some(n)),
        Some(Wrapped::Text(s)) => s
            .parse::<u32>()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number from 0 to 4294967295"))),
    }
}

#[cfg(test)]
mod tests {
    use super::TranscoderConfig;

    fn descriptor_bin(value: &str) -> Result<Option<Vec<u8>>, String> {
        let json = format!(
            r#"{{"services": ["a.B"], "descriptor_url": {{"cluster": "c", "url": "http://h/"}}, "proto_descriptor_bin": {value}}}"#
        );
        TranscoderConfig::from_json(json.as_bytes()).map(|c| c.proto_descriptor_bin).map_err(|e| e.to_string())
    }

    #[test]
    fn base64_reads_as_envoy_does() {
        let bytes = Some(vec![0xfb, 0xff, 0x01]);
        assert_eq!(descriptor_bin(r#""+/8B""#), Ok(bytes.clone()), "standard alphabet");
        assert_eq!(descriptor_bin(r#""-_8B""#), Ok(bytes.clone()), "URL-safe alphabet");
        assert_eq!(descriptor_bin(r#""+/8=""#), Ok(Some(vec![0xfb, 0xff])), "padded");
        assert_eq!(descriptor_bin(r#""+/\n8 B""#), Ok(bytes.clone()), "whitespace, as YAML folds it");
        assert_eq!(descriptor_bin(r#""+\/8B""#), Ok(bytes), "a JSON escape");
        assert_eq!(descriptor_bin("null"), Ok(None));
        let err = descriptor_bin(r#""not base64!""#).expect_err("refused");
        assert!(err.contains("proto_descriptor_bin") && err.contains("base64"), "{err}");
        let err = descriptor_bin("7").expect_err("refused");
        assert!(err.contains("proto_descriptor_bin") && err.contains("base64 string"), "{err}");
    }
}

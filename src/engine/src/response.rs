//! Response translation: a gRPC response message becomes a JSON (or raw
//! `HttpBody`) HTTP body, honouring `print_options` and `response_body`.

use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, ReflectMessage, SerializeOptions, Value};
use serde::Serialize;

use crate::config::PrintOptions;
use crate::json::{self, MessageJson, NonFinite};
use crate::routes::{HttpBody, Route, HTTP_BODY};
use crate::status::Status;

/// An HTTP body and its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPayload {
    /// `application/json`, or the content type an `HttpBody` carries.
    pub content_type: String,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// JSON printing settings derived once from `print_options`.
#[derive(Debug, Clone)]
pub struct Printer {
    options: SerializeOptions,
    pretty: bool,
    proto_names: bool,
    print_defaults: bool,
}

/// The content type of JSON answers.
pub const JSON: &str = "application/json";

impl Printer {
    /// Builds the printer for Envoy's print options.
    pub fn new(print: &PrintOptions) -> Self {
        Printer {
            options: SerializeOptions::new()
                .stringify_64_bit_integers(true)
                .use_enum_numbers(print.always_print_enums_as_ints)
                .use_proto_field_name(print.preserve_proto_field_names)
                .skip_default_fields(!print.always_print_primitive_fields),
            pretty: print.add_whitespace,
            proto_names: print.preserve_proto_field_names,
            print_defaults: print.always_print_primitive_fields,
        }
    }

    /// The same options without `add_whitespace` (records that must fit on one line).
    pub fn compact(&self) -> Printer {
        Printer { pretty: false, ..self.clone() }
    }

    /// Whether `add_whitespace` is on.
    pub fn pretty(&self) -> bool {
        self.pretty
    }

    /// Whether `always_print_primitive_fields` is on.
    pub fn print_defaults(&self) -> bool {
        self.print_defaults
    }

    /// The proto3 JSON options in force.
    pub fn options(&self) -> &SerializeOptions {
        &self.options
    }

    /// Prints a message as JSON, map entries sorted by key as protobuf prints them.
    pub fn message(&self, message: &DynamicMessage) -> Result<Vec<u8>, Status> {
        let text = self.value(&MessageJson(message, &self.options))?;
        if !json::has_multi_entry_maps(message) {
            return Ok(text);
        }
        // Deeper than serde_json reads (128 levels): keep the unsorted text rather than fail.
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&text) else { return Ok(text) };
        json::sort_map_entries(&message.descriptor(), &mut value);
        self.value(&value)
    }

    /// Prints any value as JSON, with protobuf's number format and `add_whitespace`.
    pub fn value<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, Status> {
        json::value_to_vec(self.pretty, value)
            .map_err(|e| Status::internal(format!("could not print the response as JSON: {e}")))
    }
}

/// Turns one response message (unframed bytes) into the HTTP body for `route`.
pub fn message_to_http(route: &Route, message: &[u8], printer: &Printer) -> Result<HttpPayload, Status> {
    let output = &route.method.output;
    if route.response_body.is_none() && output.full_name() == HTTP_BODY {
        return http_body_payload(message);
    }
    let decoded = DynamicMessage::decode(output.clone(), message).map_err(|e| {
        Status::internal(format!("the gRPC response is not a valid {} message: {e}", output.full_name()))
    })?;
    match &route.response_body {
        None => Ok(json_payload(printer.message(&decoded)?)),
        Some(path) => response_field(&decoded, path, printer),
    }
}

fn json_payload(body: Vec<u8>) -> HttpPayload {
    HttpPayload { content_type: JSON.to_string(), body }
}

fn http_body_payload(message: &[u8]) -> Result<HttpPayload, Status> {
    let body = HttpBody::decode(message)
        .map_err(|e| Status::internal(format!("the gRPC response is not a valid google.api.HttpBody: {e}")))?;
    Ok(HttpPayload { content_type: body.content_type, body: body.data })
}

/// Prints one field of the response (`response_body`): grpc-gateway allows any
/// field, Envoy only `HttpBody` ones.
fn response_field(
    message: &DynamicMessage,
    path: &[FieldDescriptor],
    printer: &Printer,
) -> Result<HttpPayload, Status> {
    let Some((leaf, parents)) = path.split_last() else {
        return Ok(json_payload(printer.message(message)?));
    };
    let mut current = message.clone();
    for field in parents {
        let next = current.get_field(field).as_message().cloned();
        current = next.unwrap_or_else(|| DynamicMessage::new(current.descriptor()));
    }
    let value = current.get_field(leaf);
    if let (Kind::Message(m), Value::Message(inner)) = (leaf.kind(), value.as_ref()) {
        if m.full_name() == HTTP_BODY && !leaf.is_list() {
            return http_body_payload(&inner.encode_to_vec());
        }
        if !leaf.is_list() && !leaf.is_map() {
            return Ok(json_payload(printer.message(inner)?));
        }
    }
    // Scalars, lists and maps: print the parent with only this field, defaults
    // included, and take the field's JSON out of it.
    let mut only = DynamicMessage::new(current.descriptor());
    only.set_field(leaf, value.into_owned());
    let options = printer.options.clone().skip_default_fields(false);
    let json = MessageJson(&only, &options)
        .serialize(NonFinite(serde_json::value::Serializer))
        .map_err(|e| Status::internal(format!("could not print the response as JSON: {e}")))?;
    let key = if printer.proto_names { leaf.name() } else { leaf.json_name() };
    let field_json = match json {
        serde_json::Value::Object(mut fields) => fields.remove(key).unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    };
    Ok(json_payload(printer.value(&field_json)?))
}

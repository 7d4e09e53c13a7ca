//! Errors met while loading the configuration. Errors met while serving a
//! request are [`crate::status::Status`] values, since they become answers.

use thiserror::Error;

/// Why a plugin configuration was refused; the message names the field.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The configuration bytes are not UTF-8 text.
    #[error("the plugin configuration is not UTF-8 text; it must be the JSON of a GrpcJsonTranscoder")]
    NotUtf8,
    /// Nothing was configured.
    #[error("the plugin configuration is empty; it must be the JSON of a GrpcJsonTranscoder")]
    Empty,
    /// A field has a wrong value or type.
    #[error("configuration field `{field}`: {message}")]
    Invalid {
        /// Dotted path of the field, as written in the configuration.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    /// A problem with one named field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid { field: field.to_string(), message: message.into() }
    }
}

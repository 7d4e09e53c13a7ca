//! Reading sets and configurations the way the filter does, and writing outputs.

use std::path::Path;

use base64::Engine;
use prost_reflect::DescriptorPool;
use transcoder::surface::{self, Problem, ProblemKind};
use transcoder::TranscoderConfig;

use crate::Select;

/// Reads a file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Writes a file whole (through a temporary file, so a failed run leaves no half file).
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("rgp-tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A set read from disk: its bytes and pool, or the problems that keep it from loading.
pub struct LoadedSet {
    pub bytes: Vec<u8>,
    pub pool: DescriptorPool,
}

/// Loads a set as the filter does. Problems (missing imports, a set the
/// descriptor pool refuses) are returned as such; unreadable or undecodable
/// files are usage errors.
pub fn load_set(path: &Path) -> Result<Result<LoadedSet, Vec<Problem>>, String> {
    let bytes = read(path)?;
    let missing = surface::missing_imports(&bytes)
        .map_err(|e| format!("{} is not a binary FileDescriptorSet: {e}", path.display()))?;
    if !missing.is_empty() {
        let problems = missing
            .into_iter()
            .map(|(file, import)| Problem {
                kind: ProblemKind::MissingImport,
                file: Some(file),
                method: None,
                message: format!(
                    "imports {import:?}, which is not in the set; build the set with its imports (rgp build, or protoc --include_imports)"
                ),
            })
            .collect();
        return Ok(Err(problems));
    }
    match transcoder::decode_descriptor_set(&bytes) {
        Ok(pool) => Ok(Ok(LoadedSet { bytes, pool })),
        Err(e) => Ok(Err(vec![Problem {
            kind: ProblemKind::BadDescriptorSet,
            file: None,
            method: None,
            message: format!("the descriptor set does not load: {e}"),
        }])),
    }
}

/// The filter configuration a command works with: the `--config` file's
/// options (if any), the set as `proto_descriptor_bin`, and the services of
/// `--services`, else of the config, else every service of the set.
/// Errors are unreadable or non-JSON files (usage errors); whether the filter
/// accepts the configuration is [`parse_config`]'s business.
pub fn config_json(
    select: &Select,
    set: &LoadedSet,
) -> Result<(serde_json::Map<String, serde_json::Value>, Vec<String>), String> {
    let mut object = match &select.config {
        None => serde_json::Map::new(),
        Some(path) => {
            let text = read(path)?;
            match serde_json::from_slice::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Object(map)) => map,
                Ok(_) => return Err(format!("{}: the filter configuration must be a JSON object", path.display())),
                Err(e) => return Err(format!("{}: not JSON: {e}", path.display())),
            }
        }
    };
    for key in ["proto_descriptor", "protoDescriptor", "proto_descriptor_bin", "protoDescriptorBin"] {
        object.remove(key);
    }
    let services: Vec<String> = if !select.services.is_empty() {
        select.services.clone()
    } else {
        match object.get("services") {
            Some(serde_json::Value::Array(list)) if !list.is_empty() => {
                list.iter().filter_map(|v| v.as_str().map(str::to_string)).collect()
            }
            _ => surface::all_services(&set.pool),
        }
    };
    object.insert("services".into(), serde_json::json!(services));
    Ok((object, services))
}

/// The configuration JSON with the set inline, as the filter receives it.
pub fn with_descriptor(object: &serde_json::Map<String, serde_json::Value>, set: &[u8]) -> serde_json::Value {
    let mut full = serde_json::Map::new();
    full.insert(
        "proto_descriptor_bin".into(),
        serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(set)),
    );
    for (k, v) in object {
        full.insert(k.clone(), v.clone());
    }
    serde_json::Value::Object(full)
}

/// Parses the configuration as the filter does.
pub fn parse_config(full: &serde_json::Value) -> Result<TranscoderConfig, String> {
    TranscoderConfig::from_json(full.to_string().as_bytes()).map_err(|e| e.to_string())
}

/// Prints problems as `error:` lines on stderr.
pub fn report(problems: &[Problem]) {
    for p in problems {
        eprintln!("error: {p}");
    }
}

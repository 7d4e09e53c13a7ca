//! `rgp build`: .proto files -> FileDescriptorSet with every import, the
//! `google/api` and `google/rpc` protos built in, byte-for-byte reproducible.

use std::path::{Path, PathBuf};

use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver};

/// The protos every transcoding user needs, built into the binary so nobody vendors them.
/// Files of the same name under an `-I` directory take precedence.
pub const EMBEDDED: &[(&str, &str)] = &[
    ("google/api/annotations.proto", include_str!("../../../descriptors/google/api/annotations.proto")),
    ("google/api/http.proto", include_str!("../../../descriptors/google/api/http.proto")),
    ("google/api/httpbody.proto", include_str!("../../../descriptors/google/api/httpbody.proto")),
    ("google/rpc/status.proto", include_str!("../../../descriptors/google/rpc/status.proto")),
    ("google/rpc/error_details.proto", include_str!("../../../descriptors/google/rpc/error_details.proto")),
];

struct EmbeddedResolver;

impl FileResolver for EmbeddedResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match EMBEDDED.iter().find(|(n, _)| *n == name) {
            Some((n, source)) => File::from_source(n, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

fn resolver(includes: &[PathBuf]) -> ChainFileResolver {
    let mut chain = ChainFileResolver::new();
    for include in includes {
        chain.add(IncludeFileResolver::new(include.clone()));
    }
    chain.add(EmbeddedResolver);
    chain.add(GoogleFileResolver::new());
    chain
}

/// Compiles `files` (paths under an include directory, or names relative to one)
/// into an encoded FileDescriptorSet with imports and without source info.
///
/// Files are compiled in the order of their names in the set, not of the
/// arguments, so the output does not depend on how the command line was written.
pub fn compile(includes: &[PathBuf], files: &[PathBuf]) -> Result<Vec<u8>, String> {
    let includes: Vec<PathBuf> = if includes.is_empty() { vec![PathBuf::from(".")] } else { includes.to_vec() };
    for include in &includes {
        if !include.is_dir() {
            return Err(format!("include directory {} does not exist", include.display()));
        }
    }
    if files.is_empty() {
        return Err("no .proto files given".into());
    }
    let names = resolver(&includes);
    let mut ordered: Vec<(String, &Path)> = files
        .iter()
        .map(|path| {
            let name = names.resolve_path(path).unwrap_or_else(|| path.to_string_lossy().replace('\\', "/"));
            (name, path.as_path())
        })
        .collect();
    ordered.sort();
    ordered.dedup_by(|a, b| a.0 == b.0);

    let mut compiler = protox::Compiler::with_file_resolver(resolver(&includes));
    compiler.include_imports(true).include_source_info(false);
    for (_, path) in &ordered {
        compiler.open_file(path).map_err(|e| describe(&e, &includes))?;
    }
    Ok(compiler.encode_file_descriptor_set())
}

/// `file:line:col: message` (protox's Debug form), plus advice for missing files.
fn describe(e: &protox::Error, includes: &[PathBuf]) -> String {
    let mut text = format!("{e:?}");
    if e.is_file_not_found() {
        let dirs: Vec<String> = includes.iter().map(|d| d.display().to_string()).collect();
        text.push_str(&format!(
            " (searched the include directories {}, the built-in google/api and google/rpc protos and the google/protobuf well-known types; add -I DIR)",
            dirs.join(", ")
        ));
    }
    text
}

//! Helpers shared by the CLI tests: run the real `rgp` binary, find the repository's files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// `descriptors/`.
pub fn descriptors() -> PathBuf {
    root().join("descriptors")
}

/// `src/cli/tests/fixtures/`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fresh scratch directory under target/, removed and recreated per test name.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rgp-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What a run of `rgp` gave.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "rgp failed: {self:#?}");
        self
    }
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "unexpected exit code: {self:#?}");
        self
    }
}

/// Runs `rgp` with these arguments in the repository root.
pub fn rgp<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_rgp")).args(args).current_dir(root()).output().expect("run rgp");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// `rgp build -I descriptors bookstore + echo -o DIR/name`, returning the path.
pub fn build_example(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let d = descriptors();
    rgp(&[
        "build".as_ref(),
        "-I".as_ref(),
        d.as_os_str(),
        d.join("bookstore/v1/bookstore.proto").as_os_str(),
        d.join("echo/v1/echo.proto").as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
    .ok();
    out
}

/// `rgp build -I fixtures NAME -o DIR/out.pb`, returning the path.
pub fn build_fixture(dir: &Path, proto: &str) -> PathBuf {
    let out = dir.join(format!("{}.pb", proto.replace('/', "_")));
    let f = fixtures();
    rgp(&["build".as_ref(), "-I".as_ref(), f.as_os_str(), proto.as_ref(), "-o".as_ref(), out.as_os_str()]).ok();
    out
}

use std::path::Path; use crate::Failure;
pub fn run(_o: &Path, _n: &Path, _s: &[String], _a: bool) -> Result<(), Failure> { Err(Failure::Usage("not yet".into())) }

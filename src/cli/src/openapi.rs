use std::path::Path; use crate::Failure;
pub fn run(_o: &Path, _s: &[String], _t: Option<&str>, _p: bool, _out: &Path) -> Result<(), Failure> { Err(Failure::Usage("not yet".into())) }

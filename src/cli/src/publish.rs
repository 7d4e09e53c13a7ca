use std::path::Path; use crate::Failure;
pub fn run(_o: &Path, _n: &str, _ns: &str, _w: &str, _s: &crate::Select, _out: &Path) -> Result<(), Failure> { Err(Failure::Usage("not yet".into())) }

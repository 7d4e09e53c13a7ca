//! `rgp check`: the routes the filter will serve from a set, and every problem.

use std::path::Path;

use transcoder::surface::{self, Problem, ProblemKind};
use transcoder::Transcoder;

use crate::load;
use crate::{Failure, Select};

pub fn run(set_path: &Path, select: &Select) -> Result<(), Failure> {
    let set = match load::load_set(set_path)? {
        Ok(set) => set,
        Err(problems) => {
            load::report(&problems);
            eprintln!("{}: {} problem(s); nothing else was checked", set_path.display(), problems.len());
            return Err(Failure::Problems);
        }
    };
    let (object, services) = load::config_json(select, &set)?;
    let full = load::with_descriptor(&object, &set.bytes);
    let mut problems: Vec<Problem> = Vec::new();

    // The options that change routing come from the configuration when it parses.
    let config = match load::parse_config(&full) {
        Ok(config) => Some(config),
        Err(e) => {
            problems.push(Problem {
                kind: ProblemKind::BadDescriptorSet,
                file: select.config.as_ref().map(|p| p.display().to_string()),
                method: None,
                message: format!("the filter refuses this configuration: {e}"),
            });
            None
        }
    };
    let analysis = surface::analyze(&set.pool, &services, &config.clone().unwrap_or_default());
    problems.extend(analysis.problems.iter().cloned());

    // Load it exactly as the filter does, and make sure we tell the same story.
    let mut loaded_routes: Option<Vec<(String, String, String)>> = None;
    if let Some(config) = config {
        match Transcoder::new(config) {
            Ok(t) => {
                loaded_routes = Some(
                    t.routes()
                        .iter()
                        .map(|r| (r.http_method.clone(), r.template.clone(), r.method.grpc_path.clone()))
                        .collect(),
                );
            }
            Err(e) => problems.push(Problem {
                kind: ProblemKind::BadDescriptorSet,
                file: None,
                method: None,
                message: format!("the filter refuses this set and configuration: {e}"),
            }),
        }
    }

    let mut routes = 0;
    for b in &analysis.bindings {
        let target = b.full_method();
        let mut notes = Vec::new();
        if b.duplicate {
            notes.push("IGNORED: an earlier binding has this route");
        } else if b.canonical.is_none() {
            notes.push("BROKEN: template does not parse");
        } else if !b.usable {
            notes.push("BROKEN: the filter answers 400");
        }
        if b.auto {
            notes.push("auto_mapping");
        }
        if b.client_streaming {
            notes.push("client streaming");
        }
        if b.server_streaming {
            notes.push("server streaming");
        }
        let notes = if notes.is_empty() { String::new() } else { format!("  ({})", notes.join(", ")) };
        println!("{} {} -> {target}{notes}", b.http_method, b.template);
        routes += 1;
    }
    if let Some(loaded) = &loaded_routes {
        // Every binding the analysis accepts must be a route of the filter, and the other way round.
        let ours: Vec<(String, String, String)> = analysis
            .bindings
            .iter()
            .filter(|b| b.canonical.is_some() && !b.duplicate)
            .map(|b| (b.http_method.clone(), b.template.clone(), format!("/{}", b.full_method())))
            .collect();
        if &ours != loaded {
            problems.push(Problem {
                kind: ProblemKind::BadDescriptorSet,
                file: None,
                method: None,
                message: format!(
                    "internal: rgp's analysis and the filter's route table differ (rgp: {ours:?}; filter: {loaded:?}); please report this"
                ),
            });
        }
    }
    for method in &analysis.unbound {
        eprintln!("note: {method} has no google.api.http binding; it is reachable over REST only with auto_mapping");
    }
    load::report(&problems);
    eprintln!(
        "{}: {} service(s), {routes} route(s), {} problem(s)",
        set_path.display(),
        services.len(),
        problems.len()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Problems)
    }
}

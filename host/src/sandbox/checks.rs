//! The checks a module passes at load: its imports against the app's grants, its exports against the ABI.

use super::*;

/// WASI functions no app is granted, by name prefix: p1 sockets work only on
/// preopened sockets, which the host never gives, so importing them can only
/// be a mistake or a probe.
pub(super) const DENIED_WASI_PREFIXES: &[&str] = &["sock_"];

/// Whether a module may import `module::name` under these grants; the error
/// names the import and why it is refused.
pub(super) fn check_import(module: &str, name: &str, grants: &Grants) -> Result<(), String> {
    match module {
        WASI_MODULE => match DENIED_WASI_PREFIXES.iter().find(|p| name.starts_with(*p)) {
            Some(_) => Err(format!(
                "imports `{module}::{name}`, which is never granted: guests get no sockets"
            )),
            // Other WASI names are checked by linking, whose error names them.
            None => Ok(()),
        },
        HOST_MODULE => match imports::host_function(name) {
            None => Err(format!(
                "imports `{module}::{name}`, which this host does not provide (it provides: {})",
                HOST_FUNCTIONS
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(f) if !grants.host.contains(f.grant) => Err(format!(
                "imports `{module}::{name}`, which is not granted to this app \
                 (add \"{}\" to its grants.host)",
                f.grant
            )),
            Some(_) => Ok(()),
        },
        _ => Err(format!(
            "imports `{module}::{name}`, but only `{WASI_MODULE}` and `{HOST_MODULE}` imports are provided"
        )),
    }
}

/// Checks that `export` is there with the ABI's signature (`None`: a memory).
pub(super) fn check_export(module: &Module, export: &Export) -> Result<(), String> {
    let Export { name, signature } = *export;
    let Some(ty) = module.get_export(name) else {
        return Err(format!("missing export `{name}`"));
    };
    match (ty, signature) {
        (ExternType::Memory(_), None) => Ok(()),
        (ExternType::Func(f), Some(expected)) => {
            let got = signature_of(&f);
            if got == expected {
                Ok(())
            } else {
                Err(format!(
                    "export `{name}` has type {got}, expected {expected}"
                ))
            }
        }
        (_, None) => Err(format!("export `{name}` is not a memory")),
        (_, Some(expected)) => Err(format!("export `{name}` is not a function {expected}")),
    }
}

pub(super) fn signature_of(f: &FuncType) -> String {
    let params: Vec<String> = f.params().map(|p| p.to_string()).collect();
    let results: Vec<String> = f.results().map(|r| r.to_string()).collect();
    let results = match results.len() {
        0 => "()".to_owned(),
        1 => results[0].clone(),
        _ => format!("({})", results.join(", ")),
    };
    format!("({}) -> {}", params.join(", "), results)
}

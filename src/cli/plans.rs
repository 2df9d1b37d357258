//! `vmbench plans`: the plans built into vmbench.

use std::process::ExitCode;

use anyhow::Result;

use crate::input::InputError;

pub(super) fn plans(name: Option<&str>) -> Result<ExitCode> {
    use crate::plan::BUILT_IN;
    let Some(name) = name else {
        for (name, what, _) in BUILT_IN {
            println!("{name:<12} {what}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let wanted = name.trim_end_matches(".toml");
    match BUILT_IN.iter().find(|(n, ..)| *n == wanted) {
        Some((_, _, source)) => {
            print!("{source}");
            Ok(ExitCode::SUCCESS)
        }
        None => Err(InputError {
            file: "plans".into(),
            line: 0,
            column: 0,
            field: "name".into(),
            message: format!(
                "no built-in plan {name:?}; there are: {}",
                BUILT_IN.map(|(n, ..)| n).join(", ")
            ),
        }
        .into()),
    }
}

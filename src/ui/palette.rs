//! The command line (`:`): its commands and what its title says. What
//! each command does is the front end's (app/prompt.rs).

/// The commands of `:`, each with what it takes, as completion and the
/// unknown-command answer list them.
pub const COMMANDS: &[(&str, &str)] = &[
    ("phase", "N: go to phase N"),
    ("time", "T: go to a session time (1:05:00, 90s)"),
    ("guest", "NAME: show that guest's copies only"),
    ("tech", "NAME: show that technology's copies only"),
    ("filter", "TEXT: as /; nothing clears it"),
    ("note", "TEXT: a note in the recording (live)"),
    ("zoom", "in | out | off: the charts' time span"),
    ("pan", "back | forward: a zoomed chart"),
    ("window", "the charts' window: phase, 1 min, 5 min"),
    ("sort", "copy | state | rate | cpu: the copies table"),
    ("theme", "dark | light | mono"),
    (
        "layout",
        "1 overview | 2 copies | 3 host-seen and guests | 4 log",
    ),
    (
        "export",
        "view: the screen's text, its charts as SVG, PNG and CSV",
    ),
    ("help", "the keys"),
    ("quit", "as q"),
];

/// What the command line's title says: the commands, or what a partly
/// typed one takes.
pub fn palette_title(text: &str) -> String {
    let word = text.split_whitespace().next().unwrap_or("");
    match COMMANDS.iter().find(|(name, _)| *name == word) {
        Some((name, takes)) => format!(" :{name} {takes} (Enter; Tab completes) "),
        None => {
            let matching: Vec<&str> = COMMANDS
                .iter()
                .map(|(name, _)| *name)
                .filter(|name| name.starts_with(word))
                .collect();
            format!(" command: {} (Tab completes) ", matching.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_title_lists_what_a_partly_typed_command_can_be() {
        assert!(palette_title("p").contains("phase pan"));
        assert!(palette_title("zoom").contains("in | out | off"));
    }
}

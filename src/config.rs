//! The operator's own screen settings: `$XDG_CONFIG_HOME/vmbench/config.toml`
//! (else `~/.config/vmbench/config.toml`), read when a screen starts and
//! never written by it. Flags on the command line win over the file, the
//! file over the defaults. `vmbench config --default` prints the file with
//! every default.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use crate::input::{InputError, parse_toml};
use crate::ui::copies::Column;
use crate::ui::keys::{Action, KeyMap, parse_key};
use crate::ui::theme::Theme;
use crate::ui::{ScreenLayout, View};

/// The file with every setting at its default, commented.
pub const DEFAULT: &str = r#"# vmbench's screen settings (vmbench config --default prints this file).
# Read when a screen starts; never written by vmbench. Command-line flags
# win over this file, and this file over the defaults shown here.

# What the screen gives most rows to: 1 overview, 2 copies,
# 3 host-seen and guests, 4 log (keys 1-4 switch).
layout = 1

# dark, light, mono, or a path to a theme file, relative to this file's
# folder (--theme wins; NO_COLOR picks mono when neither names one).
# theme = "dark"

# Network rates in "bits" per second, as links are rated, or "bytes".
units = "bits"

# The copies table's columns, in order, from: copy, tech, state, now,
# cpu, seen (host-seen │ guest-seen), history. A narrow screen drops
# seen, history, tech and cpu, in that order, before any other.
columns = ["copy", "tech", "state", "now", "cpu", "seen", "history"]

# Whether the screen takes the mouse (M switches; off, the terminal
# selects text as usual).
mouse = true

# Keys moved to others: an action's name = a character, or Tab, Enter,
# Esc, Space, Backspace, Left, Right, Up, Down, PageUp, PageDown, Home,
# End, F1..F12. The help (?) shows the keys as moved.
[keys]
# filter = "/"
# command = ":"
# zoom-in = "z"
"#;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    layout: Option<Spanned<u32>>,
    theme: Option<Spanned<String>>,
    units: Option<Spanned<String>>,
    columns: Option<Spanned<Vec<String>>>,
    mouse: Option<bool>,
    #[serde(default)]
    keys: BTreeMap<String, Spanned<String>>,
}

/// What a screen starts with.
pub struct Settings {
    pub theme: Theme,
    layout: ScreenLayout,
    net_bits: bool,
    columns: Vec<Column>,
    mouse: bool,
    keys: KeyMap,
}

impl Settings {
    /// A view set as the settings say.
    pub fn apply(&self, view: &mut View) {
        view.layout = self.layout;
        view.net_bits = self.net_bits;
        view.columns = self.columns.clone();
        view.mouse = self.mouse;
        view.keys = self.keys.clone();
    }
}

/// Where the file is looked for.
pub fn location() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("vmbench").join("config.toml"))
}

/// The settings: the file's (where there is one) under the command line's
/// theme. A file that cannot be read or is wrong is an error naming its
/// line; a missing one is the defaults.
pub fn load(cli_theme: Option<&str>, no_color: bool) -> Result<Settings, InputError> {
    let Some(path) = location() else {
        return settings("", "(no config file)", cli_theme, no_color);
    };
    let origin = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(source) => settings(&source, &origin, cli_theme, no_color),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            settings("", &origin, cli_theme, no_color)
        }
        Err(e) => Err(InputError::unreadable(&origin, &e)),
    }
}

/// The settings from a file's text.
pub fn settings(
    source: &str,
    origin: &str,
    cli_theme: Option<&str>,
    no_color: bool,
) -> Result<Settings, InputError> {
    let file: File = parse_toml(source, origin)?;
    let wrong = |span: std::ops::Range<usize>, field: &str, message: String| {
        InputError::at(source, origin, Some(span), field.to_string(), message)
    };
    let layout = match &file.layout {
        None => ScreenLayout::Overview,
        Some(n) => ScreenLayout::numbered(*n.get_ref()).ok_or_else(|| {
            wrong(
                n.span(),
                "layout",
                "1 overview, 2 copies, 3 host-seen and guests or 4 log".into(),
            )
        })?,
    };
    let net_bits = match file
        .units
        .as_ref()
        .map(|u| (u.get_ref().as_str(), u.span()))
    {
        None | Some(("bits", _)) => true,
        Some(("bytes", _)) => false,
        Some((_, span)) => return Err(wrong(span, "units", "\"bits\" or \"bytes\"".into())),
    };
    let columns = match &file.columns {
        None => Column::ORDER.to_vec(),
        Some(names) => {
            let columns: Vec<Column> = names
                .get_ref()
                .iter()
                .map(|name| {
                    Column::named(name).ok_or_else(|| {
                        let known: Vec<&str> = Column::ORDER.iter().map(|c| c.name()).collect();
                        wrong(
                            names.span(),
                            "columns",
                            format!("no column {name:?}: {} exist", known.join(", ")),
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            if !columns.contains(&Column::Copy) {
                return Err(wrong(
                    names.span(),
                    "columns",
                    "the table needs its \"copy\" column to say which copy a row is".into(),
                ));
            }
            columns
        }
    };
    let mut moved = Vec::new();
    for (name, key) in &file.keys {
        let field = format!("keys.{name}");
        let action = Action::named(name).ok_or_else(|| {
            wrong(
                key.span(),
                &field,
                format!("no action {name:?} (the help, ?, lists them by their keys)"),
            )
        })?;
        let code = parse_key(key.get_ref()).ok_or_else(|| {
            wrong(
                key.span(),
                &field,
                format!(
                    "{:?} is no key: a character, Tab, Enter, Esc, Space, F1..F12, ...",
                    key.get_ref()
                ),
            )
        })?;
        if action == Action::Layout {
            return Err(wrong(
                key.span(),
                &field,
                "layouts keep their digits, 1 to 4".into(),
            ));
        }
        if let Some((other, _)) = moved.iter().find(|(_, c)| *c == code) {
            let other: &Action = other;
            return Err(wrong(
                key.span(),
                &field,
                format!("{:?} is already the key of {}", key.get_ref(), other.name()),
            ));
        }
        moved.push((action, code));
    }
    // A key moved onto another action's own key takes it only if that
    // action moved away too: otherwise one key would mean two things.
    for (action, code) in &moved {
        let holder = crate::ui::keys::KEYS
            .iter()
            .find(|b| b.action != *action && b.codes.contains(code));
        if let Some(holder) = holder.filter(|h| !moved.iter().any(|(a, _)| *a == h.action)) {
            let key = &file.keys[action.name()];
            return Err(wrong(
                key.span(),
                &format!("keys.{}", action.name()),
                format!(
                    "{:?} is the key of {}: move that one too, or pick another",
                    key.get_ref(),
                    holder.action.name()
                ),
            ));
        }
    }
    let theme = match (cli_theme, &file.theme) {
        (Some(chosen), _) => Theme::resolve(Some(chosen), no_color)?,
        (None, Some(named)) => {
            // A path in the file is relative to the file's folder.
            let folder = std::path::Path::new(origin)
                .parent()
                .unwrap_or(std::path::Path::new(""));
            let named_path = folder.join(named.get_ref());
            let choice = if Theme::built_in(named.get_ref()).is_some() || !named_path.exists() {
                named.get_ref().clone()
            } else {
                named_path.display().to_string()
            };
            Theme::resolve(Some(&choice), no_color)
                .map_err(|e| wrong(named.span(), "theme", e.to_string()))?
        }
        (None, None) => Theme::resolve(None, no_color)?,
    };
    Ok(Settings {
        theme,
        layout,
        net_bits,
        columns,
        mouse: file.mouse.unwrap_or(true),
        keys: KeyMap::new(moved),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_reads_as_the_defaults() {
        // NO_COLOR still picks mono with the default file in place.
        let mono = settings(DEFAULT, "default", None, true).expect("reads");
        assert!(mono.theme.is_mono());
        let settings = settings(DEFAULT, "default", None, false).expect("the default file reads");
        let mut view = View::new(crate::ui::Feed::Live { waiting: false });
        let before = view.clone();
        settings.apply(&mut view);
        assert_eq!(view, before);
    }

    #[test]
    fn a_bad_line_is_named_and_the_command_line_wins() {
        let e = settings("layout = 2\nunits = \"furlongs\"\n", "c.toml", None, false)
            .err()
            .expect("refused");
        assert_eq!((e.line, e.field.as_str()), (2, "units"), "{e}");
        let e = settings("columns = [\"copy\", \"rate\"]\n", "c.toml", None, false)
            .err()
            .expect("refused");
        assert!(e.message.contains("no column \"rate\""), "{e}");
        let e = settings(
            "[keys]\nfilter = \"f\"\nwindow = \"f\"\n",
            "c.toml",
            None,
            false,
        )
        .err()
        .expect("refused");
        assert_eq!((e.line, e.field.as_str()), (3, "keys.window"), "{e}");
        let e = settings("[keys]\nzoom-in = \"s\"\n", "c.toml", None, false)
            .err()
            .expect("refused");
        assert!(e.message.contains("is the key of start"), "{e}");
        assert!(
            settings(
                "[keys]\nzoom-in = \"s\"\nstart = \"S\"\n",
                "c.toml",
                None,
                false
            )
            .is_ok()
        );
        let e = settings("[keys]\nlayout = \"L\"\n", "c.toml", None, false)
            .err()
            .expect("refused");
        assert_eq!(e.field, "keys.layout", "{e}");
        let e = settings("\ntheme = \"drak\"\n", "c.toml", None, false)
            .err()
            .expect("refused");
        assert_eq!((e.line, e.field.as_str()), (2, "theme"), "{e}");
        let e = settings("colour = 1\n", "c.toml", None, false)
            .err()
            .expect("refused");
        assert_eq!(e.line, 1, "{e}");
        let s = settings(
            "theme = \"light\"\nlayout = 4\n",
            "c.toml",
            Some("mono"),
            false,
        )
        .expect("reads");
        assert!(s.theme.is_mono(), "--theme wins over the file");
        let mut view = View::new(crate::ui::Feed::Live { waiting: false });
        s.apply(&mut view);
        assert_eq!(view.layout, ScreenLayout::Log);
    }
}

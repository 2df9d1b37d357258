//! Themes: named colour slots loaded from themes/*.toml. The three shipped
//! themes are compiled in; `--theme PATH` loads any other file.

use std::path::Path;

use ratatui::style::Color;
use serde::{Deserialize, Deserializer};

use crate::input::{InputError, parse_toml};

pub const BUILT_IN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    ("mono", include_str!("../../themes/mono.toml")),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(pub Color);

impl<'de> Deserialize<'de> for Slot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<Color>().map(Slot).map_err(|_| {
            serde::de::Error::custom(format!("{text:?} is not a colour name or #rrggbb"))
        })
    }
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Theme {
    pub text: Slot,
    pub dim: Slot,
    pub accent: Slot,
    pub border: Slot,
    pub border_selected: Slot,
    pub title: Slot,
    pub cpu_user: Slot,
    pub cpu_system: Slot,
    pub cpu_iowait: Slot,
    pub cpu_steal: Slot,
    pub cpu_other: Slot,
    pub receive: Slot,
    pub transmit: Slot,
    pub read: Slot,
    pub write: Slot,
    pub memory: Slot,
    pub progress: Slot,
    pub good: Slot,
    pub warn: Slot,
    pub bad: Slot,
    pub highlight_bg: Slot,
}

/// The slot names, for `--list-theme-slots`.
pub fn slot_names() -> Vec<String> {
    BUILT_IN[0]
        .1
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .filter(|k| !k.starts_with('#'))
        .map(str::to_string)
        .collect()
}

impl Theme {
    pub fn built_in(name: &str) -> Option<Theme> {
        BUILT_IN.iter().find(|(n, _)| *n == name).map(|(n, src)| {
            parse_toml(src, &format!("themes/{n}.toml")).expect("shipped themes are valid (tested)")
        })
    }

    /// `--theme` first, then NO_COLOR, then the dark default.
    pub fn resolve(choice: Option<&str>, no_color: bool) -> Result<Theme, InputError> {
        match choice {
            Some(name_or_path) if let Some(theme) = Theme::built_in(name_or_path) => Ok(theme),
            Some(path) => {
                let source = std::fs::read_to_string(Path::new(path)).map_err(|e| {
                    let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                    let mut err = InputError::unreadable(path, &e);
                    err.message =
                        format!("{} (built-in themes: {})", err.message, names.join(", "));
                    err
                })?;
                parse_toml(&source, path)
            }
            None if no_color => Ok(Theme::built_in("mono").expect("shipped")),
            None => Ok(Theme::built_in("dark").expect("shipped")),
        }
    }

    /// Colours for lines that have none of their own (one per device or
    /// per processor in a detail chart), taken in turn.
    pub fn palette(&self) -> [Color; 10] {
        [
            self.accent.0,
            self.receive.0,
            self.transmit.0,
            self.read.0,
            self.write.0,
            self.cpu_user.0,
            self.cpu_system.0,
            self.memory.0,
            self.warn.0,
            self.good.0,
        ]
    }

    pub fn is_mono(&self) -> bool {
        self.accent.0 == Color::Reset && self.text.0 == Color::Reset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_themes_parse_and_name_every_slot() {
        for (name, _) in BUILT_IN {
            assert!(Theme::built_in(name).is_some(), "{name}");
        }
        assert_eq!(slot_names().len(), 21);
    }

    #[test]
    fn no_color_picks_mono_unless_a_theme_is_named() {
        assert!(Theme::resolve(None, true).expect("mono").is_mono());
        assert!(
            !Theme::resolve(Some("light"), true)
                .expect("light")
                .is_mono()
        );
    }

    #[test]
    fn a_bad_colour_is_located() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.toml");
        let source = BUILT_IN[0]
            .1
            .replace("accent = \"cyan\"", "accent = \"chartreuse-ish\"");
        std::fs::write(&path, source).expect("write theme");
        let err = Theme::resolve(Some(path.to_str().expect("utf-8 path")), false)
            .expect_err("bad colour");
        assert_eq!((err.line, err.field.as_str()), (5, "accent"));
    }
}

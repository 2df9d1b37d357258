//! Lines the operator types on the screen: a note (`m`), a place to go to
//! (`g`), a filter (`/`) and a command (`:`). A line that cannot be taken
//! stays open with what is wrong in it (`? ...`), to be typed again.

use ratatui::crossterm::event::{KeyCode, KeyEvent};

use super::Consumer;
use super::terminal::{Next, Seek, Steer, go};
use crate::ui::filter::Filter;
use crate::ui::palette::COMMANDS;
use crate::ui::theme::Theme;
use crate::ui::{CopySort, Overlay, View};

/// Handles a key while a line is being typed; None when no line is open.
pub fn typing(
    key: KeyEvent,
    consumer: &mut Consumer,
    view: &mut View,
    theme: &mut Theme,
    steer: &mut dyn Steer,
    screen: ratatui::layout::Rect,
) -> Option<Next> {
    if key.code == KeyCode::Tab
        && let Overlay::Palette(text) = &mut view.overlay
    {
        *text = complete(text, consumer);
        return Some(Next::Stay);
    }
    let (Overlay::Note(text)
    | Overlay::Goto(text)
    | Overlay::Filter(text)
    | Overlay::Palette(text)) = &mut view.overlay
    else {
        return None;
    };
    match key.code {
        KeyCode::Enter => {
            let text = std::mem::take(text);
            let typed = std::mem::replace(&mut view.overlay, Overlay::None);
            return Some(take(typed, text, consumer, view, theme, steer, screen));
        }
        KeyCode::Esc => view.overlay = Overlay::None,
        KeyCode::Backspace => {
            text.pop();
        }
        KeyCode::Char(c) => {
            if text.starts_with("? ") {
                text.clear();
            }
            text.push(c);
        }
        _ => {}
    }
    Some(Next::Stay)
}

/// Acts on a line typed to its end.
fn take(
    typed: Overlay,
    text: String,
    consumer: &mut Consumer,
    view: &mut View,
    theme: &mut Theme,
    steer: &mut dyn Steer,
    screen: ratatui::layout::Rect,
) -> Next {
    match typed {
        Overlay::Note(_) if !text.trim().is_empty() => steer.note(text, consumer),
        Overlay::Goto(_) => match Seek::parse(&text) {
            Some(to) => go(to, consumer, view, steer),
            // Said where the operator looks, and typed again.
            None => view.overlay = Overlay::Goto(format!("? {text}")),
        },
        Overlay::Filter(_) => set_filter(&text, view, Overlay::Filter),
        Overlay::Palette(_) => return command(&text, consumer, view, theme, steer, screen),
        _ => {}
    }
    Next::Stay
}

/// Sets (or with an empty line clears) the filter; a bad one reopens the
/// line it was typed in (`again`) with the reason.
fn set_filter(text: &str, view: &mut View, again: fn(String) -> Overlay) {
    match Filter::parse(text) {
        Ok(filter) => {
            view.filter = filter;
            view.selected = 0;
        }
        Err(why) => view.overlay = again(format!("? {why}")),
    }
}

/// Runs a `:` command.
fn command(
    text: &str,
    consumer: &mut Consumer,
    view: &mut View,
    theme: &mut Theme,
    steer: &mut dyn Steer,
    screen: ratatui::layout::Rect,
) -> Next {
    let text = text.trim();
    let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
    let rest = rest.trim();
    let again = |why: String| Overlay::Palette(format!("? {why}"));
    match word {
        "" => {}
        "phase" => match rest.parse::<u32>() {
            Ok(n) if n > 0 => go(Seek::Phase(n), consumer, view, steer),
            _ => view.overlay = again(format!("phase takes a number, not {rest:?}")),
        },
        "time" => match Seek::parse(rest) {
            Some(Seek::Time(t)) => go(Seek::Time(t), consumer, view, steer),
            _ => view.overlay = again(format!("time takes 1:05:00, 65:00 or 90s, not {rest:?}")),
        },
        "guest" | "tech" if rest.is_empty() => {
            view.overlay = again(format!("{word} takes a name: {}", names(word, consumer)))
        }
        "guest" => set_filter(&format!("guest:{rest}"), view, again),
        "tech" => set_filter(&format!("tech:{rest}"), view, again),
        "filter" => set_filter(rest, view, again),
        "note" if view.is_replay() => {
            view.overlay = again("notes go into a live session's recording".into())
        }
        "note" if rest.is_empty() => {
            view.overlay = again("note takes its text: note BIOS updated".into())
        }
        "note" => steer.note(rest.to_string(), consumer),
        "zoom" => match rest {
            "in" | "" => view.zoom(&consumer.session, -1),
            "out" => view.zoom(&consumer.session, 1),
            "off" => (view.zoom, view.pan) = (None, 0),
            _ => view.overlay = again("zoom in, zoom out or zoom off".into()),
        },
        "pan" => match rest {
            "back" => view.pan(&consumer.session, -1),
            "forward" => view.pan(&consumer.session, 1),
            _ => view.overlay = again("pan back or pan forward".into()),
        },
        "window" => view.window = view.window.next(),
        "sort" => match rest {
            "copy" => view.sort = CopySort::Copy,
            "state" => view.sort = CopySort::State,
            "rate" => view.sort = CopySort::Rate,
            "cpu" => view.sort = CopySort::Cpu,
            _ => view.overlay = again("sort by copy, state, rate or cpu".into()),
        },
        "theme" => match Theme::built_in(rest) {
            Some(chosen) => *theme = chosen,
            None => view.overlay = again(format!("no theme {rest:?}: dark, light and mono exist")),
        },
        "compare" if rest.is_empty() => {
            view.overlay = again("compare takes a recording: compare B.vmb".into())
        }
        "compare" => match steer.compare(std::path::Path::new(rest), view, consumer) {
            Ok(()) => view.status = Some(format!("beside: {rest}, aligned phase by phase")),
            Err(why) => view.overlay = again(format!("compare {rest}: {why}")),
        },
        "export" if rest == "view" => super::terminal::export_view(consumer, view, theme, screen),
        "export" => {
            view.overlay = again("export view (the screen, its charts and their data)".into())
        }
        "layout" => match rest
            .parse()
            .ok()
            .and_then(crate::ui::ScreenLayout::numbered)
        {
            Some(layout) => view.layout = layout,
            None => {
                view.overlay =
                    again("layout 1 overview, 2 copies, 3 host-seen and guests, 4 log".into())
            }
        },
        "help" => view.overlay = Overlay::Help,
        "quit" => return steer.act(crate::ui::keys::Action::Quit, view, consumer),
        other => {
            let known: Vec<&str> = COMMANDS.iter().map(|(name, _)| *name).collect();
            view.overlay = again(format!("no command {other:?}; {} exist", known.join(", ")));
        }
    }
    Next::Stay
}

/// The guests or technologies of the session, for completion and errors.
fn names(word: &str, consumer: &Consumer) -> String {
    candidates(word, consumer).join(", ")
}

fn candidates(word: &str, consumer: &Consumer) -> Vec<String> {
    let session = &consumer.session;
    let mut names: Vec<String> = match word {
        "guest" => session.guests.iter().map(|(g, _)| g.clone()).collect(),
        "tech" => session
            .runs
            .values()
            .map(|r| r.technology.clone())
            .collect(),
        "theme" => ["dark", "light", "mono"].map(String::from).to_vec(),
        "sort" => ["copy", "state", "rate", "cpu"].map(String::from).to_vec(),
        "export" => vec!["view".to_string()],
        "layout" => ["1", "2", "3", "4"].map(String::from).to_vec(),
        "zoom" => ["in", "out", "off"].map(String::from).to_vec(),
        "pan" => ["back", "forward"].map(String::from).to_vec(),
        _ => Vec::new(),
    };
    names.sort();
    names.dedup();
    names
}

/// Completes the command word, or the name after it, as far as every
/// candidate agrees.
fn complete(text: &str, consumer: &Consumer) -> String {
    let text = text.strip_prefix("? ").unwrap_or(text);
    match text.split_once(' ') {
        None => {
            let words: Vec<String> = COMMANDS
                .iter()
                .map(|(name, _)| name.to_string())
                .filter(|name| name.starts_with(text))
                .collect();
            match common_prefix(&words) {
                Some(prefix) if words.len() == 1 => format!("{prefix} "),
                Some(prefix) => prefix,
                None => text.to_string(),
            }
        }
        Some((word, arg)) => {
            let names: Vec<String> = candidates(word, consumer)
                .into_iter()
                .filter(|n| n.starts_with(arg.trim()))
                .collect();
            match common_prefix(&names) {
                Some(prefix) => format!("{word} {prefix}"),
                None => text.to_string(),
            }
        }
    }
}

fn common_prefix(words: &[String]) -> Option<String> {
    let first = words.first()?;
    let length = words.iter().fold(first.len(), |len, w| {
        first
            .chars()
            .zip(w.chars())
            .take_while(|(a, b)| a == b)
            .count()
            .min(len)
    });
    Some(first.chars().take(length).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefixes_complete_as_far_as_all_agree() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            common_prefix(&words(&["phase", "pan"])).as_deref(),
            Some("p")
        );
        assert_eq!(common_prefix(&words(&["theme"])).as_deref(), Some("theme"));
        assert_eq!(common_prefix(&[]), None);
    }
}

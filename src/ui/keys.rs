//! The one key table: every key, what it does, and where it applies. The help
//! overlay is printed from it, so the two cannot disagree.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Skip,
    Abort,
    Note,
    NextPane,
    PrevPane,
    Detail,
    Results,
    Overhead,
    Pause,
    SeekBack,
    SeekForward,
    Slower,
    Faster,
    Help,
    Close,
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    Live,
    Replay,
    Both,
}

pub struct Binding {
    pub label: &'static str,
    pub codes: &'static [KeyCode],
    pub action: Action,
    pub what: &'static str,
    /// One word for the footer.
    pub hint: &'static str,
    pub applies: Applies,
}

pub const KEYS: &[Binding] = &[
    Binding {
        label: "s",
        codes: &[KeyCode::Char('s')],
        action: Action::Start,
        what: "start the plan (or go on after an abort)",
        hint: "start",
        applies: Applies::Live,
    },
    Binding {
        label: "n",
        codes: &[KeyCode::Char('n')],
        action: Action::Skip,
        what: "skip to the next phase",
        hint: "next",
        applies: Applies::Live,
    },
    Binding {
        label: "a",
        codes: &[KeyCode::Char('a')],
        action: Action::Abort,
        what: "abort the current phase and hold the plan",
        hint: "abort",
        applies: Applies::Live,
    },
    Binding {
        label: "m",
        codes: &[KeyCode::Char('m')],
        action: Action::Note,
        what: "drop a timestamped note into the recording",
        hint: "note",
        applies: Applies::Live,
    },
    Binding {
        label: "Tab",
        codes: &[KeyCode::Tab],
        action: Action::NextPane,
        what: "select the next pane",
        hint: "pane",
        applies: Applies::Both,
    },
    Binding {
        label: "S-Tab",
        codes: &[KeyCode::BackTab],
        action: Action::PrevPane,
        what: "select the previous pane",
        hint: "pane",
        applies: Applies::Both,
    },
    Binding {
        label: "Enter",
        codes: &[KeyCode::Enter],
        action: Action::Detail,
        what: "detail view of the selected pane",
        hint: "info",
        applies: Applies::Both,
    },
    Binding {
        label: "r",
        codes: &[KeyCode::Char('r')],
        action: Action::Results,
        what: "results: the % loss matrix, filled in as phases end",
        hint: "loss",
        applies: Applies::Both,
    },
    Binding {
        label: "o",
        codes: &[KeyCode::Char('o')],
        action: Action::Overhead,
        what: "overhead: host-seen ÷ guest-seen load, per guest",
        hint: "ovh",
        applies: Applies::Both,
    },
    Binding {
        label: "p Space",
        codes: &[KeyCode::Char('p'), KeyCode::Char(' ')],
        action: Action::Pause,
        what: "pause the display (replay: pause playback)",
        hint: "pause",
        applies: Applies::Both,
    },
    Binding {
        label: "←",
        codes: &[KeyCode::Left],
        action: Action::SeekBack,
        what: "seek back 10 s",
        hint: "seek",
        applies: Applies::Replay,
    },
    Binding {
        label: "→",
        codes: &[KeyCode::Right],
        action: Action::SeekForward,
        what: "seek forward 10 s",
        hint: "seek",
        applies: Applies::Replay,
    },
    Binding {
        label: "-",
        codes: &[KeyCode::Char('-')],
        action: Action::Slower,
        what: "half the replay speed (down to 0.25×)",
        hint: "slower",
        applies: Applies::Replay,
    },
    Binding {
        label: "+",
        codes: &[KeyCode::Char('+'), KeyCode::Char('=')],
        action: Action::Faster,
        what: "double the replay speed (up to 64×)",
        hint: "faster",
        applies: Applies::Replay,
    },
    Binding {
        label: "?",
        codes: &[KeyCode::Char('?')],
        action: Action::Help,
        what: "this help",
        hint: "help",
        applies: Applies::Both,
    },
    Binding {
        label: "Esc",
        codes: &[KeyCode::Esc],
        action: Action::Close,
        what: "close the overlay",
        hint: "close",
        applies: Applies::Both,
    },
    Binding {
        label: "q C-c",
        codes: &[KeyCode::Char('q')],
        action: Action::Quit,
        what: "quit (live: stops the plan, keeps the recording)",
        hint: "quit",
        applies: Applies::Both,
    },
];

pub fn action_for(key: KeyEvent, replay: bool) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    bindings_for(replay)
        .find(|b| b.codes.contains(&key.code))
        .map(|b| b.action)
}

pub fn bindings_for(replay: bool) -> impl Iterator<Item = &'static Binding> {
    KEYS.iter().filter(move |b| match b.applies {
        Applies::Both => true,
        Applies::Live => !replay,
        Applies::Replay => replay,
    })
}

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
    PrevPhase,
    NextPhase,
    Goto,
    Window,
    NetUnits,
    SortLeft,
    SortRight,
    LogOlder,
    LogNewer,
    LogLatest,
    RecordingEnd,
    Palette,
    Filter,
    ZoomIn,
    ZoomOut,
    PanBack,
    PanForward,
    Distribution,
    Layout,
    Mouse,
    ExportView,
}

impl Action {
    /// Its name in the config file's `[keys]`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Skip => "skip",
            Action::Abort => "abort",
            Action::Note => "note",
            Action::NextPane => "next-pane",
            Action::PrevPane => "previous-pane",
            Action::Detail => "detail",
            Action::Results => "results",
            Action::Overhead => "overhead",
            Action::Pause => "pause",
            Action::SeekBack => "seek-back",
            Action::SeekForward => "seek-forward",
            Action::Slower => "slower",
            Action::Faster => "faster",
            Action::Help => "help",
            Action::Close => "close",
            Action::Quit => "quit",
            Action::PrevPhase => "previous-phase",
            Action::NextPhase => "next-phase",
            Action::Goto => "goto",
            Action::Window => "window",
            Action::NetUnits => "units",
            Action::SortLeft => "sort-left",
            Action::SortRight => "sort-right",
            Action::LogOlder => "log-older",
            Action::LogNewer => "log-newer",
            Action::LogLatest => "log-latest",
            Action::RecordingEnd => "recording-end",
            Action::Palette => "command",
            Action::Filter => "filter",
            Action::ZoomIn => "zoom-in",
            Action::ZoomOut => "zoom-out",
            Action::PanBack => "pan-back",
            Action::PanForward => "pan-forward",
            Action::Distribution => "distribution",
            Action::Layout => "layout",
            Action::Mouse => "mouse",
            Action::ExportView => "export-view",
        }
    }

    pub fn named(name: &str) -> Option<Action> {
        KEYS.iter().map(|b| b.action).find(|a| a.name() == name)
    }
}

/// Keys the operator moved (the config file's `[keys]`): each action listed
/// answers to its new key instead of its own.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyMap {
    moved: Vec<(Action, KeyCode)>,
}

impl KeyMap {
    pub fn new(moved: Vec<(Action, KeyCode)>) -> Self {
        KeyMap { moved }
    }

    fn moved(&self, action: Action) -> Option<KeyCode> {
        self.moved
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, k)| *k)
    }

    /// The keys `binding` answers to.
    pub fn codes(&self, binding: &Binding) -> Vec<KeyCode> {
        match self.moved(binding.action) {
            Some(code) => vec![code],
            None => binding.codes.to_vec(),
        }
    }

    /// How the help and the footer write `binding`'s key.
    pub fn label(&self, binding: &Binding) -> String {
        match self.moved(binding.action) {
            Some(code) => key_name(code),
            None => binding.label.to_string(),
        }
    }
}

/// A key as the config file writes it: a character, or Tab, Enter, Esc,
/// Space, Backspace, Left, Right, Up, Down, PageUp, PageDown, Home, End,
/// F1..F12.
pub fn parse_key(text: &str) -> Option<KeyCode> {
    let mut chars = text.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Some(KeyCode::Char(c));
    }
    Some(match text {
        "Tab" => KeyCode::Tab,
        "Enter" => KeyCode::Enter,
        "Esc" => KeyCode::Esc,
        "Space" => KeyCode::Char(' '),
        "Backspace" => KeyCode::Backspace,
        "Left" => KeyCode::Left,
        "Right" => KeyCode::Right,
        "Up" => KeyCode::Up,
        "Down" => KeyCode::Down,
        "PageUp" => KeyCode::PageUp,
        "PageDown" => KeyCode::PageDown,
        "Home" => KeyCode::Home,
        "End" => KeyCode::End,
        other => KeyCode::F(
            other
                .strip_prefix('F')?
                .parse()
                .ok()
                .filter(|n| (1..=12).contains(n))?,
        ),
    })
}

fn key_name(code: KeyCode) -> String {
    match code {
        KeyCode::Char(' ') => "Space".into(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::F(n) => format!("F{n}"),
        other => format!("{other:?}"),
    }
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
    /// Shown in the footer; the rest only in the help (`?`).
    pub in_footer: bool,
}

pub const KEYS: &[Binding] = &[
    Binding {
        label: "s",
        codes: &[KeyCode::Char('s')],
        action: Action::Start,
        what: "start the plan (or go on after an abort)",
        hint: "start",
        applies: Applies::Live,
        in_footer: true,
    },
    Binding {
        label: "n",
        codes: &[KeyCode::Char('n')],
        action: Action::Skip,
        what: "skip to the next phase",
        hint: "next",
        applies: Applies::Live,
        in_footer: true,
    },
    Binding {
        label: "a",
        codes: &[KeyCode::Char('a')],
        action: Action::Abort,
        what: "abort the current phase and hold the plan",
        hint: "abort",
        applies: Applies::Live,
        in_footer: true,
    },
    Binding {
        label: "m",
        codes: &[KeyCode::Char('m')],
        action: Action::Note,
        what: "drop a timestamped note into the recording",
        hint: "note",
        applies: Applies::Live,
        in_footer: true,
    },
    Binding {
        label: "Tab",
        codes: &[KeyCode::Tab],
        action: Action::NextPane,
        what: "select the next pane",
        hint: "pane",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "S-Tab",
        codes: &[KeyCode::BackTab],
        action: Action::PrevPane,
        what: "select the previous pane",
        hint: "pane",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "Enter",
        codes: &[KeyCode::Enter],
        action: Action::Detail,
        what: "detail view of the selected pane",
        hint: "info",
        applies: Applies::Both,
        in_footer: true,
    },
    Binding {
        label: "r",
        codes: &[KeyCode::Char('r')],
        action: Action::Results,
        what: "results: the % loss matrix, filled in as phases end",
        hint: "loss",
        applies: Applies::Both,
        in_footer: true,
    },
    Binding {
        label: "o",
        codes: &[KeyCode::Char('o')],
        action: Action::Overhead,
        what: "overhead: host-seen ÷ guest-seen load, per guest",
        hint: "ovh",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "d",
        codes: &[KeyCode::Char('d')],
        action: Action::Distribution,
        what: "each copy's rates over its phase: histogram, median, p5/p95, ◆ two modes",
        hint: "dist",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "p Space",
        codes: &[KeyCode::Char('p'), KeyCode::Char(' ')],
        action: Action::Pause,
        what: "pause the display (replay: pause playback)",
        hint: "pause",
        applies: Applies::Both,
        in_footer: true,
    },
    Binding {
        label: "←",
        codes: &[KeyCode::Left],
        action: Action::SeekBack,
        what: "seek back 10 s",
        hint: "seek",
        applies: Applies::Replay,
        in_footer: false,
    },
    Binding {
        label: "→",
        codes: &[KeyCode::Right],
        action: Action::SeekForward,
        what: "seek forward 10 s",
        hint: "seek",
        applies: Applies::Replay,
        in_footer: true,
    },
    Binding {
        label: "-",
        codes: &[KeyCode::Char('-')],
        action: Action::Slower,
        what: "half the replay speed (down to 0.25×)",
        hint: "slower",
        applies: Applies::Replay,
        in_footer: false,
    },
    Binding {
        label: "+",
        codes: &[KeyCode::Char('+'), KeyCode::Char('=')],
        action: Action::Faster,
        what: "double the replay speed (up to 64×)",
        hint: "faster",
        applies: Applies::Replay,
        in_footer: false,
    },
    Binding {
        label: "[",
        codes: &[KeyCode::Char('[')],
        action: Action::PrevPhase,
        what: "previous phase (replay: seek to its start)",
        hint: "phase",
        applies: Applies::Both,
        in_footer: true,
    },
    Binding {
        label: "]",
        codes: &[KeyCode::Char(']')],
        action: Action::NextPhase,
        what: "next phase; past the newest, follow it again",
        hint: "phase",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "g",
        codes: &[KeyCode::Char('g')],
        action: Action::Goto,
        what: "go to a phase number or a time (12, 1:05:00, 90s)",
        hint: "goto",
        applies: Applies::Both,
        in_footer: true,
    },
    Binding {
        label: "w",
        codes: &[KeyCode::Char('w')],
        action: Action::Window,
        what: "charts' window: phase, last 1 min, last 5 min",
        hint: "window",
        applies: Applies::Both,
        in_footer: true,
    },
    Binding {
        label: ":",
        codes: &[KeyCode::Char(':')],
        action: Action::Palette,
        what: "command line: phase, time, guest, tech, filter, note, zoom, window, theme, ... (Tab completes)",
        hint: "cmd",
        applies: Applies::Both,
        in_footer: true,
    },
    Binding {
        label: "/",
        codes: &[KeyCode::Char('/')],
        action: Action::Filter,
        what: "filter copies, guests, series: regex, state:lost, tech:gvisor, rate<50%; /! inverts",
        hint: "filter",
        applies: Applies::Both,
        in_footer: true,
    },
    Binding {
        label: "z",
        codes: &[KeyCode::Char('z')],
        action: Action::ZoomIn,
        what: "zoom the charts in (half the time span, down to 10 s)",
        hint: "zoom",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "Z",
        codes: &[KeyCode::Char('Z')],
        action: Action::ZoomOut,
        what: "zoom out (twice the span; past the whole session, back to the window)",
        hint: "unzoom",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "h",
        codes: &[KeyCode::Char('h')],
        action: Action::PanBack,
        what: "pan a zoomed chart back in time",
        hint: "pan",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "l",
        codes: &[KeyCode::Char('l')],
        action: Action::PanForward,
        what: "pan a zoomed chart forward (up to now)",
        hint: "pan",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "b",
        codes: &[KeyCode::Char('b')],
        action: Action::NetUnits,
        what: "network in bit/s or in B/s",
        hint: "bits",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "<",
        codes: &[KeyCode::Char('<')],
        action: Action::SortLeft,
        what: "copies table: sort by the previous column",
        hint: "sort",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: ">",
        codes: &[KeyCode::Char('>')],
        action: Action::SortRight,
        what: "copies table: sort by the next column",
        hint: "sort",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "PgUp",
        codes: &[KeyCode::PageUp],
        action: Action::LogOlder,
        what: "log: scroll back",
        hint: "log",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "PgDn",
        codes: &[KeyCode::PageDown],
        action: Action::LogNewer,
        what: "log: scroll forward",
        hint: "log",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "End",
        codes: &[KeyCode::End],
        action: Action::LogLatest,
        what: "log: the latest entries",
        hint: "latest",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "e",
        codes: &[KeyCode::Char('e')],
        action: Action::RecordingEnd,
        what: "the recording's end (following it while it is written)",
        hint: "end",
        applies: Applies::Replay,
        in_footer: false,
    },
    Binding {
        label: "1-4",
        codes: &[
            KeyCode::Char('1'),
            KeyCode::Char('2'),
            KeyCode::Char('3'),
            KeyCode::Char('4'),
        ],
        action: Action::Layout,
        what: "layout: 1 overview, 2 copies, 3 host-seen and guests, 4 log",
        hint: "layout",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "X",
        codes: &[KeyCode::Char('X')],
        action: Action::ExportView,
        what: "keep the view: its text, and its charts as SVG, PNG and CSV, in ./recordings/",
        hint: "export",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "M",
        codes: &[KeyCode::Char('M')],
        action: Action::Mouse,
        what: "mouse on or off (off: the terminal selects text)",
        hint: "mouse",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "?",
        codes: &[KeyCode::Char('?')],
        action: Action::Help,
        what: "this help",
        hint: "help",
        applies: Applies::Both,
        in_footer: true,
    },
    Binding {
        label: "Esc",
        codes: &[KeyCode::Esc],
        action: Action::Close,
        what: "close the overlay",
        hint: "close",
        applies: Applies::Both,
        in_footer: false,
    },
    Binding {
        label: "q C-c",
        codes: &[KeyCode::Char('q')],
        action: Action::Quit,
        what: "quit (live: stops the plan, keeps the recording)",
        hint: "quit",
        applies: Applies::Both,
        in_footer: true,
    },
];

pub fn action_for(key: KeyEvent, replay: bool, keys: &KeyMap) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    bindings_for(replay)
        .find(|b| keys.codes(b).contains(&key.code))
        .map(|b| b.action)
}

pub fn bindings_for(replay: bool) -> impl Iterator<Item = &'static Binding> {
    KEYS.iter().filter(move |b| match b.applies {
        Applies::Both => true,
        Applies::Live => !replay,
        Applies::Replay => replay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_a_name_of_its_own_and_is_found_by_it() {
        let mut names: Vec<&str> = KEYS.iter().map(|b| b.action.name()).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "two actions share a name");
        for b in KEYS {
            assert_eq!(Action::named(b.action.name()), Some(b.action));
        }
    }

    #[test]
    fn a_moved_key_answers_instead_of_its_own_and_is_shown() {
        let keys = KeyMap::new(vec![(Action::Filter, KeyCode::Char('f'))]);
        let press = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
        assert_eq!(action_for(press('f'), false, &keys), Some(Action::Filter));
        assert_eq!(action_for(press('/'), false, &keys), None);
        let filter = KEYS
            .iter()
            .find(|b| b.action == Action::Filter)
            .expect("bound");
        assert_eq!(keys.label(filter), "f");
        assert_eq!(parse_key("F5"), Some(KeyCode::F(5)));
        assert_eq!(parse_key("Space"), Some(KeyCode::Char(' ')));
        assert_eq!(parse_key("F13"), None);
        assert_eq!(parse_key("nope"), None);
    }
}

//! The operator's filter (`/`): which copies, guests and detail series the
//! screen shows. A regular expression over a copy's guest, technology and
//! host; or `field:value` (`state:lost`, `tech:gvisor`, `guest:ct-3`,
//! `host:h2`); or a rate against the phase's median (`rate<50%`,
//! `rate>150%`). A leading `!` keeps what does not match.

use regex::Regex;

use crate::event::GuestState;
use crate::model::{Run, RunState, Session};

#[derive(Debug, Clone)]
pub struct Filter {
    /// As typed, for the footer.
    pub text: String,
    inverse: bool,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    Pattern(Regex),
    Field(Field, String),
    /// The copy's current rate below (or above) this share of the median.
    Rate {
        below: bool,
        share: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    State,
    Tech,
    Guest,
    Host,
}

impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Filter {
    /// What was typed after `/`: None for an empty filter (which clears),
    /// Err saying what is wrong and what exists.
    pub fn parse(typed: &str) -> Result<Option<Filter>, String> {
        let text = typed.trim();
        let (inverse, body) = match text.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, text),
        };
        if body.is_empty() {
            return Ok(None);
        }
        let test = if let Some(rest) = body.strip_prefix("rate") {
            let (below, share) = match (rest.strip_prefix('<'), rest.strip_prefix('>')) {
                (Some(share), _) => (true, share),
                (_, Some(share)) => (false, share),
                _ => return Err("a rate filter reads rate<50% or rate>150%".into()),
            };
            let share: f64 = share
                .trim()
                .trim_end_matches('%')
                .parse()
                .map_err(|_| format!("{share:?} is not a percentage (rate<50%)"))?;
            Test::Rate {
                below,
                share: share / 100.0,
            }
        } else if let Some((field, value)) = body.split_once(':') {
            let field = match field {
                "state" => Field::State,
                "tech" | "technology" => Field::Tech,
                "guest" => Field::Guest,
                "host" => Field::Host,
                other => {
                    return Err(format!(
                        "no field {other:?}: state, tech, guest and host exist"
                    ));
                }
            };
            Test::Field(field, value.to_string())
        } else {
            Test::Pattern(Regex::new(body).map_err(|e| format!("not a regular expression: {e}"))?)
        };
        Ok(Some(Filter {
            text: text.to_string(),
            inverse,
            test,
        }))
    }

    /// Whether the screen keeps `run`; `median` is the median current rate
    /// of the copies it is judged among.
    pub fn keeps_run(&self, run: &Run, session: &Session, median: Option<f64>) -> bool {
        let matched = match &self.test {
            Test::Pattern(re) => {
                re.is_match(&run.guest)
                    || re.is_match(&run.technology)
                    || session.host_of(&run.guest).is_some_and(|h| re.is_match(h))
            }
            Test::Field(field, value) => match field {
                Field::State => {
                    run_state_word(run) == value
                        || guest_state_word(session, &run.guest) == Some(value.as_str())
                }
                Field::Tech => run.technology == *value,
                Field::Guest => run.guest == *value,
                Field::Host => session.host_of(&run.guest) == Some(value.as_str()),
            },
            Test::Rate { below, share } => match (current_rate(run), median) {
                (Some(rate), Some(median)) if median > 0.0 => {
                    (rate < median * share) == *below && rate != median * share
                }
                _ => false,
            },
        };
        matched != self.inverse
    }

    /// Whether the guests pane keeps guest `name` (of `technology`): a
    /// pattern over its name, technology and host, or its state, host,
    /// technology or name; a rate filter speaks of copies and keeps all.
    pub fn keeps_guest(&self, name: &str, technology: Option<&str>, session: &Session) -> bool {
        let host = session.host_of(name);
        let matched = match &self.test {
            Test::Pattern(re) => {
                re.is_match(name)
                    || technology.is_some_and(|t| re.is_match(t))
                    || host.is_some_and(|h| re.is_match(h))
            }
            Test::Field(Field::Guest, value) => name == value,
            Test::Field(Field::Tech, value) => technology == Some(value.as_str()),
            Test::Field(Field::Host, value) => host == Some(value.as_str()),
            Test::Field(Field::State, value) => {
                guest_state_word(session, name) == Some(value.as_str())
            }
            Test::Rate { .. } => return true,
        };
        matched != self.inverse
    }

    /// Whether the detail view keeps a series line named `name`: a pattern
    /// over the name, or `guest:` for lines that name the guest; a filter
    /// of anything else (state, host, technology, rate) speaks of copies
    /// and guests, and keeps every line.
    pub fn keeps_series(&self, name: &str) -> bool {
        let matched = match &self.test {
            Test::Pattern(re) => re.is_match(name),
            Test::Field(Field::Guest, value) => name.split_whitespace().any(|w| w == value),
            _ => return true,
        };
        matched != self.inverse
    }
}

/// A copy's current rate in its active metric.
pub fn current_rate(run: &Run) -> Option<f64> {
    run.active_metric().and_then(|m| run.current_rate(m))
}

/// The median of the rates there are.
pub fn median_rate(runs: &[&Run]) -> Option<f64> {
    let mut rates: Vec<f64> = runs.iter().filter_map(|r| current_rate(r)).collect();
    if rates.is_empty() {
        return None;
    }
    rates.sort_by(f64::total_cmp);
    let mid = rates.len() / 2;
    Some(if rates.len() % 2 == 0 {
        (rates[mid - 1] + rates[mid]) / 2.0
    } else {
        rates[mid]
    })
}

fn run_state_word(run: &Run) -> &'static str {
    match &run.state {
        RunState::Waiting => "waiting",
        RunState::Running => "running",
        RunState::Done(crate::event::RunOutcome::Completed) => "done",
        RunState::Done(crate::event::RunOutcome::Cancelled) => "cancelled",
        RunState::Done(crate::event::RunOutcome::Failed { .. }) => "failed",
    }
}

fn guest_state_word<'a>(session: &'a Session, guest: &str) -> Option<&'a str> {
    let (_, state) = session.guests.iter().find(|(g, _)| g == guest)?;
    Some(match state {
        GuestState::Connecting => "connecting",
        GuestState::Ready { .. } => "ready",
        GuestState::Failed { .. } => "unreachable",
        GuestState::Lost { .. } => "lost",
        GuestState::Reconnecting { .. } => "reconnecting",
        GuestState::Closed => "closed",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures::many_copies;

    fn kept(session: &Session, typed: &str) -> Vec<String> {
        let filter = Filter::parse(typed).expect("parses").expect("a filter");
        // The copies of the fixture's newest phase.
        let runs: Vec<&Run> = session.runs.values().filter(|r| r.phase == 2).collect();
        let median = median_rate(&runs);
        runs.iter()
            .filter(|r| filter.keeps_run(r, session, median))
            .map(|r| format!("{}#{}", r.guest, r.copy))
            .collect()
    }

    #[test]
    fn typed_filters_parse_or_say_what_exists() {
        assert!(Filter::parse("").expect("empty").is_none());
        assert!(Filter::parse("  ! ").expect("empty").is_none());
        assert!(Filter::parse("tech:gvisor").expect("field").is_some());
        assert!(Filter::parse("rate<50%").expect("rate").is_some());
        let e = Filter::parse("colour:red").expect_err("no such field");
        assert!(e.contains("state, tech, guest and host"), "{e}");
        let e = Filter::parse("rate=5").expect_err("no operator");
        assert!(e.contains("rate<50%"), "{e}");
        assert!(Filter::parse("g(").is_err());
    }

    #[test]
    fn a_filter_keeps_the_copies_it_names_and_an_inverse_the_others() {
        let session = many_copies(4);
        let all = kept(&session, ".");
        assert_eq!(all.len(), 4, "{all:?}");
        let one = kept(&session, "guest:vm01");
        assert_eq!(one.len(), 1, "{one:?}");
        let others = kept(&session, "!guest:vm01");
        assert_eq!(others.len(), 3, "{others:?}");
        assert!(kept(&session, "tech:nope").is_empty());
        assert_eq!(kept(&session, "state:running").len(), 4);
        assert_eq!(kept(&session, "vm0[23]").len(), 2);
    }

    #[test]
    fn a_rate_filter_judges_each_copy_against_the_phases_median() {
        // The fixture's copies run at 10, 11, 12 and 13 M ops/s: the
        // median is 11.5 M.
        let session = many_copies(4);
        assert_eq!(kept(&session, "rate<90%"), ["vm00#0"]);
        assert_eq!(kept(&session, "rate>110%"), ["vm03#3"]);
        assert_eq!(kept(&session, "!rate<90%").len(), 3);
    }
}

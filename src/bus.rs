//! The bus: the one channel into the single owner of session state.

use std::sync::mpsc::Sender;

use crate::event::Event;

pub enum Msg {
    Event(Event),
    Terminal(ratatui::crossterm::event::Event),
    /// SIGINT, SIGTERM or SIGHUP, delivered by the signal thread.
    Signal(i32),
    /// Start the model afresh (a replay seeking backwards).
    Reset,
    /// The producer of the session (orchestrator or replay) has finished.
    ProducerDone(Result<(), String>),
    /// A scrape of the live metrics: the session's owner answers with
    /// their text.
    Scrape(std::sync::mpsc::Sender<String>),
    /// A message of the second producer of an A/B replay.
    Side(Box<Msg>),
    /// A replay's recording: how far it goes, and whether it is still written.
    Recording {
        end: crate::event::Nanos,
        writer: crate::store::Writer,
    },
}

/// A producer's end of the bus.
#[derive(Clone)]
pub struct EventSink(Sender<Msg>);

impl EventSink {
    pub fn new(tx: Sender<Msg>) -> Self {
        EventSink(tx)
    }

    /// False once the consumer has gone, which tells producers to stop.
    pub fn send(&self, event: Event) -> bool {
        self.0.send(Msg::Event(event)).is_ok()
    }

    pub fn reset(&self) {
        let _ = self.0.send(Msg::Reset);
    }

    pub fn recording(&self, end: crate::event::Nanos, writer: crate::store::Writer) {
        let _ = self.0.send(Msg::Recording { end, writer });
    }

    pub fn done(&self, result: Result<(), String>) {
        let _ = self.0.send(Msg::ProducerDone(result));
    }
}

//! What a click or a turn of the wheel lands on, from the same layout the
//! screen is drawn with.

use ratatui::layout::Rect;

use super::{ScreenLayout, View, aggregates, areas, copies, timeline};
use crate::model::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hit {
    /// A pane, by its index in `panes` (the four host charts, then copies).
    Pane(usize),
    /// A phase's segment of the timeline, by its index in the phases.
    Phase(usize),
    /// A sortable column's header in the copies table.
    Sort(super::CopySort),
    /// The log pane.
    Log,
}

/// What is at (x, y) on a screen of `size` showing `session` (the main
/// screen; overlays take no clicks).
pub fn hit(session: &Session, view: &View, size: Rect, x: u16, y: u16) -> Option<Hit> {
    let [_, timeline, aggregates, copies, _, log, latest, _] = areas(session, view, size);
    let inside = |r: Rect| x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height;
    if inside(timeline) {
        return timeline::phase_at(session, timeline.width, x - timeline.x).map(Hit::Phase);
    }
    if inside(aggregates) {
        return aggregates::quarters(aggregates)
            .iter()
            .position(|q| inside(*q))
            .map(Hit::Pane);
    }
    if inside(copies) && view.layout != ScreenLayout::Guests {
        return match copies::hit(session, view, copies, x, y)? {
            copies::CopyHit::Copy(index) => Some(Hit::Pane(4 + index)),
            copies::CopyHit::Sort(sort) => Some(Hit::Sort(sort)),
        };
    }
    (inside(log) || inside(latest)).then_some(Hit::Log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures::{live_view, many_copies, session};

    #[test]
    fn clicks_land_on_the_timeline_the_host_charts_and_the_copies_as_drawn() {
        let screen = Rect::new(0, 0, 120, 40);
        let session = session();
        let view = live_view();
        // The timeline's first column is the first phase; its last one a
        // phase of the plan still to come (the fixture ran 2 of 7), which
        // takes no click.
        assert_eq!(hit(&session, &view, screen, 0, 1), Some(Hit::Phase(0)));
        assert_eq!(hit(&session, &view, screen, 119, 1), None);
        // The host charts, four across on a wide screen.
        assert_eq!(hit(&session, &view, screen, 5, 5), Some(Hit::Pane(0)));
        assert_eq!(hit(&session, &view, screen, 115, 5), Some(Hit::Pane(3)));
        // Sixty-four copies are a table: a column's header sorts by it
        // (the copy's name, its rate), a row is a copy, the border nothing.
        let many = many_copies(64);
        let [.., copies_area, _, _, _, _] = areas(&many, &view, screen);
        assert_eq!(
            hit(&many, &view, screen, 4, copies_area.y + 2),
            Some(Hit::Sort(crate::ui::CopySort::Copy))
        );
        // copy 10, tech 8, state 9, then now: from column 2 + 30.
        assert_eq!(
            hit(&many, &view, screen, 33, copies_area.y + 2),
            Some(Hit::Sort(crate::ui::CopySort::Rate))
        );
        assert_eq!(
            hit(
                &many,
                &view,
                screen,
                10,
                copies_area.y + copies_area.height - 1
            ),
            None
        );
        assert_eq!(
            hit(&many, &view, screen, 10, copies_area.y + 3),
            Some(Hit::Pane(4))
        );
        assert_eq!(
            hit(&many, &view, screen, 10, copies_area.y + 5),
            Some(Hit::Pane(6))
        );
    }
}

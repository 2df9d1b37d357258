//! The `r` overlay: the report's % loss matrix over the phases so far,
//! with the guards that would refuse the report named under it. The table
//! is handed to the screen (the front end builds it from `report` when a
//! phase ends); here it is only drawn.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Clear, Paragraph, Row, Table, Widget};

use crate::ui::theme::Theme;
use crate::ui::widgets::pane_block;

/// How a cell or a note is coloured: what it says, not which colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    #[default]
    Plain,
    /// No figure, or a difference that is not significant.
    Dim,
    /// A loss.
    Warn,
    /// A gain.
    Good,
    /// The baseline's own figure.
    Accent,
    /// What makes the report refuse.
    Bad,
}

/// The loss matrix as the overlay shows it.
#[derive(Debug, Clone, Default)]
pub struct LossTable {
    /// How many phase results it was built from (None: not yet built).
    pub built_from: Option<usize>,
    pub baseline: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<(String, Tone)>>,
    /// Said under the table.
    pub notes: Vec<(String, Tone)>,
}

impl PartialEq for LossTable {
    /// A cache of what the session says: two views differ by their state,
    /// not by how much of it they have computed.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn colour(tone: Tone, theme: &Theme) -> Option<Color> {
    match tone {
        Tone::Plain => None,
        Tone::Dim => Some(theme.dim.0),
        Tone::Warn => Some(theme.warn.0),
        Tone::Good => Some(theme.good.0),
        Tone::Accent => Some(theme.accent.0),
        Tone::Bad => Some(theme.bad.0),
    }
}

fn styled(tone: Tone, theme: &Theme) -> Style {
    colour(tone, theme).map_or_else(Style::new, |c| Style::new().fg(c))
}

/// The report's loss matrix over this session's phases so far.
pub fn render(buf: &mut Buffer, area: Rect, table: &LossTable, theme: &Theme) {
    Clear.render(area, buf);
    if table.built_from.is_none() {
        return;
    }
    let block = pane_block(
        format!(" results: % loss from {} ", table.baseline),
        theme,
        true,
    );
    let inner = block.inner(area);
    block.render(area, buf);
    let mut widths: Vec<usize> = table.header.iter().map(|h| h.chars().count()).collect();
    let rows: Vec<Row> = table
        .rows
        .iter()
        .map(|row| {
            for (w, (text, _)) in widths.iter_mut().zip(row) {
                *w = (*w).max(text.chars().count());
            }
            Row::new(
                row.iter()
                    .map(|(text, tone)| Cell::from(text.clone()).style(styled(*tone, theme))),
            )
        })
        .collect();
    let notes: Vec<Line> = table
        .notes
        .iter()
        .map(|(text, tone)| Line::styled(text.clone(), styled(*tone, theme)))
        .collect();
    let [table_area, notes_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(notes.len() as u16)]).areas(inner);
    if table.rows.is_empty() {
        Paragraph::new("No phase has ended yet; the matrix fills in as phases end.")
            .style(Style::new().fg(theme.dim.0))
            .render(table_area, buf);
    } else {
        let header = Row::new(table.header.clone())
            .style(Style::new().fg(theme.dim.0).add_modifier(Modifier::BOLD));
        let drawn = Table::new(rows, widths.iter().map(|w| Constraint::Length(*w as u16)))
            .header(header)
            .column_spacing(2);
        Widget::render(drawn, table_area, buf);
    }
    Paragraph::new(notes).render(notes_area, buf);
}

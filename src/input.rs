//! Reading user-written TOML (plans, themes) into typed values, with errors
//! that name the file, line, column and field.

use std::fmt;
use std::path::PathBuf;

use serde::de::DeserializeOwned;

/// A mistake in a file the user wrote, located in its source.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "field `{}`: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for InputError {}

fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

impl InputError {
    pub fn at(
        source: &str,
        origin: &str,
        span: Option<std::ops::Range<usize>>,
        field: String,
        message: String,
    ) -> Self {
        let (line, column) = span.map_or((1, 1), |s| line_column(source, s.start));
        InputError {
            file: origin.to_string(),
            line,
            column,
            field,
            message,
        }
    }

    pub fn unreadable(origin: &str, e: &std::io::Error) -> Self {
        InputError {
            file: origin.to_string(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read it: {e}"),
        }
    }
}

pub fn parse_toml<T: DeserializeOwned>(source: &str, origin: &str) -> Result<T, InputError> {
    let deserializer = toml::Deserializer::parse(source).map_err(|e| {
        InputError::at(
            source,
            origin,
            e.span(),
            String::new(),
            e.message().to_string(),
        )
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        InputError::at(
            source,
            origin,
            e.inner().span(),
            field,
            e.inner().message().to_string(),
        )
    })
}

/// `~/x` is under $HOME, as a shell would read it.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

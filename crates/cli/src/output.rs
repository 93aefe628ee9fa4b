//! Output: every command builds a serde view and prints it as a table (the default), JSON or
//! YAML. Tables are `kubectl get`-style: upper-case headers, columns padded to the widest cell
//! and separated by three spaces.

use std::io::Write as _;

use serde::Serialize;

use crate::Error;

/// `-o/--output`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A readable table.
    #[default]
    Table,
    /// Pretty-printed JSON.
    Json,
    /// YAML.
    Yaml,
}

/// A view that can also be printed as a table.
pub trait Render: Serialize {
    /// The table form, ending with a newline.
    fn table(&self) -> String;
}

/// Renders `view` in `format`.
pub fn render<T: Render + ?Sized>(format: Format, view: &T) -> Result<String, Error> {
    Ok(match format {
        Format::Table => view.table(),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(view).map_err(|e| Error::Render {
                format: "json",
                message: e.to_string(),
            })?;
            s.push('\n');
            s
        }
        Format::Yaml => serde_yaml::to_string(view).map_err(|e| Error::Render {
            format: "yaml",
            message: e.to_string(),
        })?,
    })
}

/// Prints `view` in `format` on stdout.
pub fn emit<T: Render + ?Sized>(format: Format, view: &T) -> Result<(), Error> {
    write_stdout(&render(format, view)?)
}

/// Writes to stdout; a closed pipe (`promscalerctl ... | head`) is not an error.
pub fn write_stdout(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Write {
            path: "stdout".into(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// A `kubectl get`-style table.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells are empty).
    pub fn row(&mut self, cells: Vec<String>) -> &mut Self {
        self.rows.push(cells);
        self
    }

    /// The table as text, one line per row, ending with a newline.
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().take(n).enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                line.push_str(cell);
                if i + 1 < n {
                    line.push_str(&" ".repeat(width - cell.chars().count() + 3));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key  value` lines with the keys aligned, for one object's details.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{}\n", format!("{k:width$}   {v}").trim_end()))
        .collect()
}

pub use promscaler_core::chart::number;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns_and_trims_the_last() {
        let mut t = Table::new(&["NAME", "MIN", "TRIGGERS"]);
        t.row(vec!["sample-app".into(), "1".into(), "prometheus".into()]);
        t.row(vec!["a".into(), "10".into(), String::new()]);
        assert_eq!(
            t.render(),
            "NAME         MIN   TRIGGERS\nsample-app   1     prometheus\na            10\n"
        );
    }

    #[test]
    fn numbers_print_without_noise() {
        assert_eq!(number(140.0), "140");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(1.0 / 3.0), "0.333333");
    }
}

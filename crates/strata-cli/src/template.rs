//! `--format` for listings, as Docker's CLI takes it: `table` (the
//! default), `json` (strata's JSON array), or a Go template, with
//! `table ` before it for a header row and aligned columns.
//!
//! Templates are a subset of Go's `text/template`, the forms listings
//! are used with (no maintained Rust crate implements Go templates over
//! serde values; see docs/FORMAT.md):
//!
//! - literal text, with `\t` and `\n` written as two characters meaning a
//!   tab and a newline (Docker replaces them too);
//! - `{{.Field}}`: a field of the row;
//! - `{{json .}}` / `{{json .Field}}`: the row or a field as JSON;
//! - `{{upper .Field}}` / `{{lower .Field}}`.
//!
//! Anything else (`range`, `if`, pipelines, variables, other functions)
//! is refused with an error naming it, and a field the row lacks is
//! refused too, before anything is printed. With `table`, cells are
//! separated by tabs and aligned as Go's `tabwriter` does for Docker
//! (columns at least 10 wide, 3 spaces of padding).

use anyhow::{bail, Result};
use serde::Serialize;
use strata_store::listing::Header;

use crate::output::Out;

/// How a listing prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListFormat {
    /// The listing's own table (Docker's default format for it).
    Table,
    /// strata's JSON: an array of the listing's records.
    Json,
    Template(Template),
}

impl std::str::FromStr for ListFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<ListFormat, String> {
        match s.trim() {
            "" | "table" => Ok(ListFormat::Table),
            "json" => Ok(ListFormat::Json),
            _ => Template::parse(s).map(ListFormat::Template),
        }
    }
}

impl ListFormat {
    /// Whether a format other than the default was asked for.
    pub fn is_custom(&self) -> bool {
        *self != ListFormat::Table
    }
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    table: bool,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A field (`None`: the row itself), through a function.
    Value(Func, Option<String>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Func {
    Print,
    Json,
    Upper,
    Lower,
}

const SUPPORTED: &str =
    "{{.Field}}, {{json .}}, {{json .Field}}, {{upper .Field}}, {{lower .Field}}";

impl Template {
    /// Parses `source`; refuses what the subset lacks.
    pub fn parse(source: &str) -> Result<Template, String> {
        let (table, body) = match source.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                (true, rest.trim_start())
            }
            _ => (false, source),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        let mut parts = Vec::new();
        let mut rest = body.as_str();
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!("template: unclosed action in {source:?}"));
            };
            parts.push(action(&after[..close])?);
            rest = &after[close + 2..];
        }
        if rest.contains("}}") {
            return Err(format!("template: unexpected \"}}}}\" in {source:?}"));
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { table, parts })
    }

    /// The fields the template names, for checking against a row.
    fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Value(_, Some(f)) => Some(f.as_str()),
            _ => None,
        })
    }

    /// Whether the template names `field`.
    pub fn uses(&self, field: &str) -> bool {
        self.fields().any(|f| f == field)
    }

    fn render(&self, row: &serde_json::Value, json_fn: bool) -> Result<String> {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => s.push_str(t),
                Part::Value(f, field) => {
                    let v = match field {
                        Some(name) => row.get(name).cloned().unwrap_or_default(),
                        None => row.clone(),
                    };
                    match f {
                        Func::Json if !json_fn => {}
                        Func::Json => s.push_str(&go_json(&v)?),
                        Func::Print => s.push_str(&text(&v)),
                        Func::Upper => s.push_str(&text(&v).to_uppercase()),
                        Func::Lower => s.push_str(&text(&v).to_lowercase()),
                    }
                }
            }
        }
        Ok(s)
    }

    /// Prints `rows` (each a record whose fields are `headers`) through
    /// the template. A field the rows lack is an error before any
    /// output.
    pub fn print<T: Serialize>(&self, rows: &[T], headers: &[Header], out: &mut Out) -> Result<()> {
        if let Some(f) = self.fields().find(|f| !headers.iter().any(|(h, _)| h == f)) {
            let names: Vec<&str> = headers.iter().map(|(h, _)| *h).collect();
            bail!(
                "template: no field .{f} in this listing (its fields: {})",
                names.join(", ")
            );
        }
        let mut lines = Vec::with_capacity(rows.len() + 1);
        if self.table {
            let header: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(f, h)| ((*f).to_owned(), serde_json::Value::from(*h)))
                .collect();
            // Docker's header leaves `json` out.
            lines.push(self.render(&header.into(), false)?);
        }
        for r in rows {
            lines.push(self.render(&serde_json::to_value(r)?, true)?);
        }
        if self.table {
            for l in tabwriter(&lines) {
                writeln!(out, "{l}");
            }
        } else {
            for l in lines {
                writeln!(out, "{l}");
            }
        }
        Ok(())
    }
}

/// One action: `.Field`, `json .`, `json .Field`, `upper .Field`, ...
fn action(inner: &str) -> Result<Part, String> {
    let unsupported = || {
        Err(format!(
            "template: {{{{{inner}}}}} is not supported by strata's --format (it takes {SUPPORTED}, text, and a `table` prefix)"
        ))
    };
    let words: Vec<&str> = inner.split_whitespace().collect();
    let (func, arg) = match words.as_slice() {
        [arg] => (Func::Print, *arg),
        ["json", arg] => (Func::Json, *arg),
        ["upper", arg] => (Func::Upper, *arg),
        ["lower", arg] => (Func::Lower, *arg),
        _ => return unsupported(),
    };
    match arg {
        "." if func == Func::Json => Ok(Part::Value(func, None)),
        _ => match arg.strip_prefix('.') {
            Some(f)
                if !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Ok(Part::Value(func, Some(f.to_owned())))
            }
            _ => unsupported(),
        },
    }
}

/// A value as Go's template prints it: strings bare.
fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// JSON as Go's `encoding/json` writes it: `<`, `>` and `&` escaped.
fn go_json(v: &serde_json::Value) -> Result<String> {
    Ok(serde_json::to_string(v)?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026"))
}

/// Lines whose cells end in tabs, aligned as Go's
/// `tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)` aligns them for Docker: a
/// column is as wide as its widest cell and 3 spaces (10 at least),
/// over each run of lines that have a cell in it; a line's last cell
/// (after its last tab) is not aligned.
fn tabwriter(lines: &[String]) -> Vec<String> {
    const MIN_WIDTH: usize = 10;
    const PADDING: usize = 3;
    let rows: Vec<Vec<&str>> = lines
        .iter()
        .flat_map(|l| l.split('\n'))
        .map(|l| l.split('\t').collect())
        .collect();
    let cells = |r: &Vec<&str>| r.len() - 1;
    let mut widths: Vec<Vec<usize>> = rows.iter().map(|r| vec![0; cells(r)]).collect();
    let columns = rows.iter().map(cells).max().unwrap_or(0);
    for col in 0..columns {
        let mut i = 0;
        while i < rows.len() {
            if cells(&rows[i]) <= col {
                i += 1;
                continue;
            }
            let end = (i..rows.len())
                .find(|&k| cells(&rows[k]) <= col)
                .unwrap_or(rows.len());
            let w = (i..end)
                .map(|k| rows[k][col].chars().count() + PADDING)
                .max()
                .unwrap_or(0)
                .max(MIN_WIDTH);
            for row in &mut widths[i..end] {
                row[col] = w;
            }
            i = end;
        }
    }
    rows.iter()
        .zip(&widths)
        .map(|(r, w)| {
            let mut s = String::new();
            for (cell, width) in r.iter().zip(w) {
                s.push_str(cell);
                s.extend(std::iter::repeat_n(' ', width - cell.chars().count()));
            }
            s.push_str(r.last().copied().unwrap_or(""));
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_the_subset_lacks() {
        let cases = [
            ("{{range .Labels}}x{{end}}", "{{range .Labels}}"),
            ("{{.ID | printf \"%s\"}}", "not supported"),
            ("{{$x := .ID}}", "not supported"),
            ("{{.}}", "{{.}}"),
            ("{{index .Labels \"a\"}}", "not supported"),
            ("{{.ID", "unclosed action"),
            ("{{.ID}} }}", "unexpected"),
            ("{{.Labels.x}}", "not supported"),
        ];
        for (t, why) in cases {
            let e = Template::parse(t).expect_err(t);
            assert!(e.contains(why), "{t}: {e}");
        }
    }

    #[test]
    fn formats_as_docker_names_them() {
        assert_eq!("table".parse::<ListFormat>(), Ok(ListFormat::Table));
        assert_eq!("json".parse::<ListFormat>(), Ok(ListFormat::Json));
        let t = Template::parse("table {{.ID}}\\t{{json .Tag}}").unwrap();
        assert!(t.table && t.uses("ID") && t.uses("Tag") && !t.uses("Size"));
        let t = Template::parse("tableau {{.ID}}").unwrap();
        assert!(!t.table);
    }

    #[test]
    fn renders_fields_json_and_case() {
        let row = serde_json::json!({"ID": "abc", "Tag": "<none>", "N": 3});
        let t =
            Template::parse("{{.ID}}:{{json .Tag}} {{upper .ID}}{{lower .ID}} {{.N}} {{json .}}")
                .unwrap();
        assert_eq!(
            t.render(&row, true).unwrap(),
            r#"abc:"\u003cnone\u003e" ABCabc 3 {"ID":"abc","N":3,"Tag":"\u003cnone\u003e"}"#
        );
    }

    #[test]
    fn aligns_as_go_tabwriter() {
        let lines = ["A\tBB\tC", "long cell text\tx\tlast", "no tabs"].map(String::from);
        assert_eq!(
            tabwriter(&lines),
            [
                "A                BB        C",
                "long cell text   x         last",
                "no tabs",
            ]
        );
    }
}

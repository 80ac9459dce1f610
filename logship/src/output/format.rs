//! `<format>` of the stdout and file outputs: how a record is written as a line
//! ([`super::format_event`] writes it).

use crate::config::params::{ParamSpec, SectionSpec};
use crate::config::section::Section;

/// How a record is written as a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// `TIME TAG: JSON` (out_stdout's default).
    Stdout,
    /// The record as JSON only.
    Json,
    /// `TIME<TAB>TAG<TAB>JSON` (out_file's default).
    OutFile,
}

/// `<format>`'s declaration.
pub static SECTION: SectionSpec = SectionSpec::new(
    "format",
    &[
        ParamSpec::choice("@type", &["json", "stdout", "out_file"])
            .computed("the output's own (`stdout`, or `out_file` for the file output)")
            .doc("`json`: the record alone; `stdout`: `TIME TAG: JSON`; `out_file`: `TIME<TAB>TAG<TAB>JSON`"),
        ParamSpec::choice("output_type", &["json"]).default("json").doc("the record is written as JSON (the only choice)"),
        ParamSpec::bool("add_newline").default("true").no_effect("every line ends with a newline"),
    ],
)
.doc("How each event is written as a line.");

/// Reads `<format>`; `default` is the output's own format.
pub fn parse(s: &mut Section<'_, '_>, default: LineFormat) -> LineFormat {
    // Only `json` exists, which is what the formatters write.
    let _output_type: String = s.get("output_type");
    let format = match s.opt::<String>("@type").as_deref() {
        Some("json") => LineFormat::Json,
        Some("stdout") => LineFormat::Stdout,
        Some("out_file") => LineFormat::OutFile,
        _ => default,
    };
    let name = match format {
        LineFormat::Json => "json",
        LineFormat::Stdout => "stdout",
        LineFormat::OutFile => "out_file",
    };
    s.set_what(format!("<format> (@type {name})"));
    format
}

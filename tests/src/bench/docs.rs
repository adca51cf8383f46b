//! Markdown output: tables, and rewriting the one section of a document a harness owns,
//! between `<!-- NAME:begin -->` and `<!-- NAME:end -->`, leaving the rest untouched.

use std::path::Path;

use crate::{Error, Result};

/// A markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(
        "| {} |\n|{}\n",
        header.join(" | "),
        "---|".repeat(header.len())
    );
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// Replaces the text between the `NAME` markers of `doc` with `body`; when the markers are
/// absent, appends `heading` (e.g. `## Service overhead`) and the marked body at the end.
pub fn replace_section(doc: &str, name: &str, heading: &str, body: &str) -> String {
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let marked = format!("{begin}\n{}\n{end}", body.trim_end());
    if let (Some(b), Some(e)) = (doc.find(&begin), doc.find(&end))
        && b < e
    {
        return format!("{}{marked}{}", &doc[..b], &doc[e + end.len()..]);
    }
    let mut out = doc.trim_end().to_owned();
    out.push_str(&format!("\n\n{heading}\n\n{marked}\n"));
    out
}

/// [`replace_section`] on the file at `path` (created when missing).
pub fn write_section(path: &Path, name: &str, heading: &str, body: &str) -> Result<()> {
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let updated = replace_section(&doc, name, heading, body);
    std::fs::write(path, updated)
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_or_appended() {
        let doc = "# T\n\nintro\n";
        let once = replace_section(doc, "x", "## X", "one");
        assert_eq!(
            once,
            "# T\n\nintro\n\n## X\n\n<!-- x:begin -->\none\n<!-- x:end -->\n"
        );
        let twice = replace_section(&once, "x", "## X", "two\n");
        assert_eq!(
            twice,
            "# T\n\nintro\n\n## X\n\n<!-- x:begin -->\ntwo\n<!-- x:end -->\n"
        );
        let t = table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
        assert_eq!(today().len(), 10);
    }
}

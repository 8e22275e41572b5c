//! The process catalogue (seed 001 §6.1.1, §6.2.2 a): a process's package
//! published with a description and tags, found by search, subscribed to
//! (which creates a process of the subscriber's, in their folder, running
//! the published package), and unpublished. A listing keeps its row once
//! unpublished (its name is free again); subscriptions made before stay.
//! Pure: what a listing is and how a search matches.

use serde::{Deserialize, Serialize};

use crate::ids::Key;
use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// A published process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Serial id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// Its name, unique among listings published.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Words to find it by.
    pub tags: Vec<String>,
    /// The process it was published from (its serial id).
    pub process: i64,
    /// The package version published.
    pub package_version: String,
    /// The package's stored file.
    pub file: Key,
    /// Where robots fetch it.
    pub uri: String,
    /// Its SHA-256.
    pub sha256: String,
    /// Who published it (an audit actor word).
    pub published_by: String,
    /// When.
    pub published_at: Timestamp,
    /// Unpublished: no longer found nor subscribed to.
    #[serde(default)]
    pub unpublished: bool,
    /// Processes made from it by subscribing.
    #[serde(default)]
    pub subscriptions: u64,
}

impl Mapped for Listing {
    const KIND: &'static Kind = &Kind {
        table: "rpa_catalogue",
        name: "catalogue listing",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[Column::text("name").unique("catalogue name")],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        vec![if self.unpublished {
            Cell::Null
        } else {
            self.name.as_str().into()
        }]
    }
}

impl Record for Listing {}

/// Most tags on a listing, and characters in one.
pub const MAX_TAGS: usize = 20;

/// Checks what a listing says; the tags cleaned (trimmed, lower case, no repeats).
pub fn check(name: &str, description: &str, tags: &[String]) -> Result<Vec<String>, String> {
    if name.trim().is_empty() || name.chars().count() > 128 {
        return Err("a listing's name has 1 to 128 characters".into());
    }
    if description.chars().count() > 4000 {
        return Err("a description has at most 4000 characters".into());
    }
    let mut clean: Vec<String> = Vec::new();
    for t in tags {
        let t = t.trim().to_lowercase();
        if t.is_empty() || t.chars().count() > 40 {
            return Err("a tag has 1 to 40 characters".into());
        }
        if !clean.contains(&t) {
            clean.push(t);
        }
    }
    if clean.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags"));
    }
    Ok(clean)
}

/// Whether a published listing matches a search: every word of `query`
/// in its name, description or tags (any case), and `tag` among its tags.
pub fn matches(l: &Listing, query: &str, tag: Option<&str>) -> bool {
    if l.unpublished {
        return false;
    }
    if let Some(t) = tag
        && !l.tags.iter().any(|x| x.eq_ignore_ascii_case(t.trim()))
    {
        return false;
    }
    let text = format!("{} {} {}", l.name, l.description, l.tags.join(" ")).to_lowercase();
    query.split_whitespace().all(|w| text.contains(&w.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(name: &str, description: &str, tags: &[&str]) -> Listing {
        Listing {
            id: 1,
            version: 1,
            name: name.into(),
            description: description.into(),
            tags: tags.iter().map(|t| (*t).into()).collect(),
            process: 1,
            package_version: "1.0.0".into(),
            file: Key([0; 16]),
            uri: String::new(),
            sha256: String::new(),
            published_by: "system".into(),
            published_at: Timestamp(0),
            unpublished: false,
            subscriptions: 0,
        }
    }

    #[test]
    fn searches_match_every_word_and_the_tag() {
        let l = listing("Invoice entry", "Types invoices into the ERP", &["finance", "erp"]);
        assert!(matches(&l, "", None));
        assert!(matches(&l, "invoice ERP", None));
        assert!(matches(&l, "finance", Some("ERP")));
        assert!(!matches(&l, "invoice payroll", None));
        assert!(!matches(&l, "", Some("hr")));
        let gone = Listing { unpublished: true, ..l };
        assert!(!matches(&gone, "", None));
    }

    #[test]
    fn tags_are_cleaned_and_bounded() {
        assert_eq!(
            check("x", "", &[" Finance ".into(), "finance".into(), "ERP".into()]).unwrap(),
            ["finance", "erp"]
        );
        assert!(check("", "", &[]).is_err());
        assert!(check("x", "", &["".into()]).is_err());
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert!(check("x", "", &many).unwrap_err().contains("at most 20"));
    }
}

//! The operations centre's content (seed 001 §6.4.3): news, courses and a
//! knowledge base that administrators write and everyone with a session
//! reads and searches by words; and the hot applications, ranked from run
//! and subscription counts. Pure: what an article is, its checks, how it
//! is indexed for search, how applications rank.

use serde::{Deserialize, Serialize};

use crate::record::{Cell, Column, Kind, Mapped, Record};
use crate::time::Timestamp;

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest body, in bytes.
pub const MAX_BODY: usize = 100_000;
/// Most tags.
pub const MAX_TAGS: usize = 16;

/// Where an article is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Section {
    /// News of the platform.
    News,
    /// A course (its material at `link`, or in the body).
    Course,
    /// An entry of the knowledge base.
    Knowledge,
}

impl Section {
    /// `news`, `course` or `knowledge`.
    pub fn as_str(self) -> &'static str {
        match self {
            Section::News => "news",
            Section::Course => "course",
            Section::Knowledge => "knowledge",
        }
    }

    /// From [`Section::as_str`]'s word.
    pub fn parse(s: &str) -> Result<Section, String> {
        match s {
            "news" => Ok(Section::News),
            "course" => Ok(Section::Course),
            "knowledge" => Ok(Section::Knowledge),
            other => Err(format!("section: {other:?} is not news, course or knowledge")),
        }
    }
}

/// What an administrator writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Draft {
    /// Where it is shown.
    pub section: Section,
    /// Its title.
    pub title: String,
    /// Its text (plain text or Markdown, shown as text).
    #[serde(default)]
    pub body: String,
    /// Words to find it by.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A course's or a news item's link (`http(s)://`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

impl Draft {
    /// Checks it and returns it cleaned (trimmed; tags without repeats).
    pub fn checked(self) -> Result<Draft, String> {
        let title = self.title.trim().to_owned();
        if title.is_empty() || title.chars().count() > MAX_TITLE {
            return Err(format!("title has 1 to {MAX_TITLE} characters"));
        }
        if self.body.len() > MAX_BODY {
            return Err(format!("body has at most {MAX_BODY} bytes"));
        }
        let mut tags: Vec<String> = Vec::new();
        for t in self.tags {
            let t = t.trim().to_owned();
            if t.is_empty() || t.chars().count() > 32 {
                return Err("a tag has 1 to 32 characters".into());
            }
            if !tags.contains(&t) {
                tags.push(t);
            }
        }
        if tags.len() > MAX_TAGS {
            return Err(format!("at most {MAX_TAGS} tags"));
        }
        let link = match self.link.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()) {
            Some(l) if !(l.starts_with("http://") || l.starts_with("https://")) || l.len() > 2000 => {
                return Err("link is an http(s) URL of at most 2000 characters".into());
            }
            other => other,
        };
        Ok(Draft {
            section: self.section,
            title,
            body: self.body,
            tags,
            link,
        })
    }
}

/// An article as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Article {
    /// Serial id.
    pub id: i64,
    /// Commit version.
    pub version: u64,
    /// What was written.
    #[serde(flatten)]
    pub draft: Draft,
    /// Who wrote it first.
    pub author: String,
    /// When it was published.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Removed: no longer listed nor found.
    #[serde(default)]
    pub removed: bool,
}

impl Article {
    /// The words a search finds it by: title, tags and body.
    pub fn search_text(&self) -> String {
        let d = &self.draft;
        format!("{}\n{}\n{}", d.title, d.tags.join(" "), d.body)
    }
}

impl Mapped for Article {
    const KIND: &'static Kind = &Kind {
        table: "rpa_articles",
        name: "article",
        key: Column::int("id"),
        sealed: false,
        cached: false,
        columns: &[Column::text("section"), Column::text("search_text").full_text()],
    };
    fn key(&self) -> Cell {
        Cell::Int(self.id)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn cells(&self) -> Vec<Cell> {
        if self.removed {
            return vec![Cell::Null, Cell::Null];
        }
        vec![self.draft.section.as_str().into(), self.search_text().into()]
    }
}

impl Record for Article {}

/// An application (a process) as the hot list ranks it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hot {
    /// The process's or the listing's name.
    pub name: String,
    /// Its catalogue listing, if published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listing_id: Option<i64>,
    /// Runs ended over the window.
    pub runs: u64,
    /// Of which successful.
    pub successful: u64,
    /// Processes made from its listing.
    pub subscriptions: u64,
    /// How it ranks: runs, plus [`SUBSCRIPTION_WEIGHT`] per subscription.
    pub score: u64,
}

/// What one subscription weighs against one run in the hot list.
pub const SUBSCRIPTION_WEIGHT: u64 = 100;

/// Ranks `apps` (hottest first; equal scores by name) and keeps `limit`.
pub fn rank(mut apps: Vec<Hot>, limit: usize) -> Vec<Hot> {
    for a in &mut apps {
        a.score = a.runs + a.subscriptions * SUBSCRIPTION_WEIGHT;
    }
    apps.retain(|a| a.score > 0);
    apps.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
    apps.truncate(limit);
    apps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(title: &str) -> Draft {
        Draft {
            section: Section::Knowledge,
            title: title.into(),
            body: String::new(),
            tags: vec![],
            link: None,
        }
    }

    #[test]
    fn drafts_are_checked_and_cleaned() {
        assert!(draft("  ").checked().is_err());
        assert!(draft(&"t".repeat(201)).checked().is_err());
        let d = Draft {
            tags: vec![" ocr ".into(), "ocr".into(), "invoices".into()],
            link: Some(" https://learn.example.com/1 ".into()),
            ..draft(" Reading invoices ")
        }
        .checked()
        .unwrap();
        assert_eq!(d.title, "Reading invoices");
        assert_eq!(d.tags, ["ocr", "invoices"]);
        assert_eq!(d.link.as_deref(), Some("https://learn.example.com/1"));
        let bad_link = Draft {
            link: Some("javascript:alert(1)".into()),
            ..draft("x")
        };
        assert!(bad_link.checked().unwrap_err().contains("link"));
        assert!(Section::parse("blog").is_err());
    }

    #[test]
    fn a_removed_article_is_neither_listed_nor_found() {
        let mut a = Article {
            id: 1,
            version: 1,
            draft: draft("Robots that read"),
            author: "admin".into(),
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
            removed: false,
        };
        assert_eq!(a.cells()[0], Cell::from("knowledge"));
        assert!(matches!(&a.cells()[1], Cell::Text(t) if t.contains("Robots that read")));
        a.removed = true;
        assert_eq!(a.cells(), [Cell::Null, Cell::Null]);
    }

    #[test]
    fn subscriptions_weigh_more_than_runs() {
        let hot = |name: &str, runs, subscriptions| Hot {
            name: name.into(),
            listing_id: None,
            runs,
            successful: runs,
            subscriptions,
            score: 0,
        };
        let ranked = rank(
            vec![
                hot("busy", 150, 0),
                hot("liked", 20, 2),
                hot("idle", 0, 0),
                hot("also busy", 150, 0),
            ],
            10,
        );
        let names: Vec<_> = ranked.iter().map(|h| (h.name.as_str(), h.score)).collect();
        assert_eq!(names, [("liked", 220), ("also busy", 150), ("busy", 150)]);
    }
}

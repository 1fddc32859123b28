//! A new story's `story.md`, as `add` and the demo write it (SPEC §1).

use super::frontmatter::scalar;
use crate::time;

/// A new story, as `add` and the demo write it.
pub struct NewStory<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub priority: i64,
    pub status: &'a str,
    pub kind: &'a str,
    pub labels: &'a [String],
    pub dependencies: &'a [String],
    pub body: &'a str,
}

/// The text of a new `story.md`, with every field ai-sdlc requires (SPEC §1).
pub fn story_text(s: &NewStory) -> String {
    let list = |items: &[String]| -> String {
        let v: Vec<String> = items.iter().map(|s| scalar(s)).collect();
        format!("[{}]", v.join(", "))
    };
    let mut text = format!(
        "---\nid: {}\ntitle: {}\nslug: {}\npriority: {}\nstatus: {}\ntype: {}\ncreated: '{}'\nlabels: {}\n",
        s.id,
        scalar(s.title),
        scalar(&super::slugify(s.title)),
        s.priority,
        s.status,
        s.kind,
        time::date(time::now_ms()),
        list(s.labels),
    );
    if !s.dependencies.is_empty() {
        text.push_str(&format!("dependencies: {}\n", list(s.dependencies)));
    }
    text.push_str(
        "research_complete: false\nplan_complete: false\nimplementation_complete: false\nreviews_complete: false\n---\n",
    );
    text.push_str(&format!("# {}\n\n{}\n", s.title, s.body));
    text
}

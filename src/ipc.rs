//! The runner <-> executor protocol (SPEC §6): newline-delimited JSON, one
//! `Message` per line, and a bounded line reader that never lets a child
//! grow the reader's memory past `MAX_LINE`.

use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

pub const VERSION: u32 = 1;
pub const MAX_LINE: usize = 1 << 20;
/// What one read takes in: small, since each stream of each agent has one.
const READ_BUFFER: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    Status {
        phase: String,
        phase_index: usize,
        phase_count: usize,
        progress: u8,
        message: String,
    },
    Log {
        stream: Stream,
        line: String,
        /// Beyond SPEC §6, optional: what to show people instead of the
        /// raw line (the agent's step, `Edit src/lib.rs`); "" shows nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        show: Option<String>,
    },
    HealthResponse {
        pid: u32,
        rss_kb: u64,
    },
    Error {
        code: String,
        message: String,
        recoverable: bool,
    },
    Complete {
        success: bool,
        exit_code: Option<i32>,
        duration_ms: u64,
        failed_phase: Option<String>,
        /// Beyond SPEC §6, optional: the signal that ended the failed phase.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// Beyond SPEC §6, optional: why it failed, for `blocked_reason`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Optional: the kind of failure the agent's CLI reported (`auth`,
        /// `usage_cap`, `rate_limit`, `overloaded`, `network`, `other`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
        /// Optional: the agent's final message (of the last phase).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        final_message: Option<String>,
        /// Optional, where the agent's CLI reports them: totals of the run.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        input_tokens: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output_tokens: Option<u64>,
        /// Optional: failed at a usage cap that lifts at this time (ms
        /// since the epoch), as the agent's CLI said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<u64>,
    },
    /// Beyond SPEC §6 (additive): one phase (or one round of it) ended.
    /// The runner records it on the board: the section file, the
    /// completion flag, `last_run.phases`.
    PhaseResult(PhaseResult),
    /// Beyond SPEC §6 (additive), the executor's first message: where it
    /// runs, and what it sees at the worktree's path (under a launcher,
    /// another node must see the same folder).
    Started {
        pid: u32,
        host: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slurm_job_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slurm_step_id: Option<String>,
        /// `st_dev` and `st_ino` of the worktree, 0 when it cannot be seen.
        dev: u64,
        ino: u64,
    },
    /// Beyond SPEC §6 (additive): the agent's CLI is rate limited
    /// (`rate_limit`), its service overloaded (`overloaded`), or its
    /// account at a usage cap (`usage_cap`, lifting at `not_before`, ms
    /// since the epoch, when it said), as it happens.
    Limited {
        kind: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        not_before: Option<u64>,
    },
    /// Beyond SPEC §6 (additive): what the story has spent so far in this
    /// run (USD where known, tokens in and out).
    Spent {
        usd: f64,
        tokens: u64,
    },
    HealthCheck,
    Shutdown {
        grace_ms: u64,
    },
}

/// What `Body::PhaseResult` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseResult {
    pub phase: String,
    /// 1, or the implement/review round.
    pub round: u32,
    /// `succeeded`, `failed`, `cancelled`, or `skipped` (its flag was
    /// already set).
    pub outcome: String,
    /// The phase's output (final message, else the end of its stdout),
    /// at most 64 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// A review's verdict: `approved`, `changes_requested`, `no_verdict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Where `cost_usd` came from: `cli`, or `pricing` (its tokens at
    /// `agent.pricing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub v: u32,
    pub story_id: String,
    pub ts: u64,
    #[serde(flatten)]
    pub body: Body,
}

impl Message {
    pub fn new(story_id: &str, body: Body) -> Message {
        Message {
            v: VERSION,
            story_id: story_id.to_string(),
            ts: crate::time::now_ms(),
            body,
        }
    }
}

/// Write `msg` as one whole line (one `write_all` of the line and its newline).
pub fn write_message(w: &mut impl Write, msg: &Message) -> io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)
}

/// Decode one line. An error is a reason for a warning, never a failure.
pub fn decode(line: &[u8]) -> Result<Message, String> {
    let msg: Message = serde_json::from_slice(line).map_err(|e| {
        let text = e.to_string();
        if text.contains("unknown variant") {
            format!("unknown message type ({text})")
        } else {
            format!("not a valid message: {text}")
        }
    })?;
    if msg.v != VERSION {
        return Err(format!("unsupported protocol version {}", msg.v));
    }
    Ok(msg)
}

/// One line from a `LineReader`.
#[derive(Debug, PartialEq)]
pub enum Line<'a> {
    /// A whole line, without its `\n` (or `\r\n`).
    Full(&'a [u8]),
    /// A line longer than the limit was skipped; this many bytes.
    TooLong(usize),
    /// The stream ended in the middle of a line.
    Cut(&'a [u8]),
}

/// Reads `\n`-terminated lines with a hard limit on line length.
pub struct LineReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// A line that spans reads.
    partial: Vec<u8>,
    /// `partial` was handed out by the last call; clear it on the next.
    handed_out: bool,
    /// Bytes of an over-long line skipped so far.
    skipping: Option<usize>,
    eof: bool,
    max: usize,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            partial: Vec::new(),
            handed_out: false,
            skipping: None,
            eof: false,
            max,
        }
    }

    /// Is more input already buffered? When false, the next call blocks:
    /// the moment to flush whatever was written downstream.
    pub fn has_buffered(&self) -> bool {
        self.start < self.end
    }

    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        if self.handed_out {
            self.partial.clear();
            self.handed_out = false;
        }
        loop {
            if let Some(i) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let (from, to) = (self.start, self.start + i);
                self.start = to + 1;
                let total = self.partial.len() + i;
                if let Some(skipped) = self.skipping.take() {
                    return Ok(Some(Line::TooLong(skipped + i)));
                }
                if total > self.max {
                    self.partial.clear();
                    return Ok(Some(Line::TooLong(total)));
                }
                if self.partial.is_empty() {
                    return Ok(Some(Line::Full(trim_cr(&self.buf[from..to]))));
                }
                self.partial.extend_from_slice(&self.buf[from..to]);
                self.handed_out = true;
                return Ok(Some(Line::Full(trim_cr(&self.partial))));
            }
            // No newline buffered: keep what is there (or count it as skipped).
            let rest = &self.buf[self.start..self.end];
            if let Some(skipped) = self.skipping.as_mut() {
                *skipped += rest.len();
            } else if self.partial.len() + rest.len() > self.max {
                self.skipping = Some(self.partial.len() + rest.len());
                self.partial.clear();
            } else {
                self.partial.extend_from_slice(rest);
            }
            self.start = 0;
            self.end = 0;
            if self.eof {
                return Ok(None);
            }
            match self.inner.read(&mut self.buf) {
                Ok(0) => {
                    self.eof = true;
                    if let Some(skipped) = self.skipping.take() {
                        return Ok(Some(Line::TooLong(skipped)));
                    }
                    if self.partial.is_empty() {
                        return Ok(None);
                    }
                    self.handed_out = true;
                    return Ok(Some(Line::Cut(&self.partial)));
                }
                Ok(n) => self.end = n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(body: Body) {
        let msg = Message::new("S-0001", body);
        let mut out = Vec::new();
        write_message(&mut out, &msg).unwrap();
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(*out.last().unwrap(), b'\n');
        let back = decode(&out[..out.len() - 1]).unwrap();
        assert_eq!(back, msg);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["story_id"], "S-0001");
        assert!(v["ts"].as_u64().unwrap() > 0);
        assert!(v["type"].is_string());
    }

    #[test]
    fn every_message_type_round_trips() {
        roundtrip(Body::Status {
            phase: "implement".into(),
            phase_index: 0,
            phase_count: 2,
            progress: 50,
            message: "started".into(),
        });
        roundtrip(Body::Log {
            stream: Stream::Stderr,
            line: "ünïcode \"quoted\" \t tab".into(),
            show: None,
        });
        roundtrip(Body::Log {
            stream: Stream::Stdout,
            line: "{\"type\":\"assistant\"}".into(),
            show: Some("Edit src/lib.rs".into()),
        });
        roundtrip(Body::HealthResponse {
            pid: 42,
            rss_kb: 1234,
        });
        roundtrip(Body::Error {
            code: "spawn_failed".into(),
            message: "no such file".into(),
            recoverable: false,
        });
        roundtrip(Body::Complete {
            success: false,
            exit_code: Some(3),
            duration_ms: 10,
            failed_phase: Some("verify".into()),
            signal: None,
            error: Some("boom".into()),
            failure: Some("auth".into()),
            final_message: Some("done".into()),
            cost_usd: Some(0.25),
            input_tokens: Some(10),
            output_tokens: Some(2),
            not_before: Some(1_796_539_499_000),
        });
        roundtrip(Body::Limited {
            kind: "usage_cap".into(),
            message: "You've hit your session limit".into(),
            not_before: Some(1_796_539_499_000),
        });
        roundtrip(Body::Spent {
            usd: 0.25,
            tokens: 1200,
        });
        roundtrip(Body::PhaseResult(PhaseResult {
            phase: "review".into(),
            round: 2,
            outcome: "succeeded".into(),
            output: Some("CHANGES REQUESTED\nadd a test".into()),
            verdict: Some("changes_requested".into()),
            duration_ms: 1500,
            cost_usd: Some(0.01),
            input_tokens: Some(1),
            output_tokens: None,
            cost_from: Some("pricing".into()),
        }));
        roundtrip(Body::HealthCheck);
        roundtrip(Body::Shutdown { grace_ms: 10_000 });
    }

    #[test]
    fn the_wire_format_is_the_spec_one() {
        let line = br#"{"v":1,"type":"health_check","story_id":"S-1","ts":5}"#;
        assert_eq!(decode(line).unwrap().body, Body::HealthCheck);
        let line = br#"{"v":1,"type":"complete","story_id":"S-1","ts":5,"success":true,"exit_code":0,"duration_ms":1,"failed_phase":null,"extra":"ignored"}"#;
        assert!(matches!(
            decode(line).unwrap().body,
            Body::Complete { success: true, .. }
        ));
    }

    #[test]
    fn bad_lines_are_reasons_not_panics() {
        let unknown = br#"{"v":1,"type":"teleport","story_id":"S-1","ts":5}"#;
        assert!(
            decode(unknown)
                .unwrap_err()
                .contains("unknown message type")
        );
        assert!(
            decode(b"{not json")
                .unwrap_err()
                .contains("not a valid message")
        );
        assert!(decode(b"").is_err());
        assert!(decode(&[0xff, 0xfe, b'{']).is_err());
        let v2 = br#"{"v":2,"type":"health_check","story_id":"S-1","ts":5}"#;
        assert!(decode(v2).unwrap_err().contains("version"));
        let missing = br#"{"v":1,"type":"log","story_id":"S-1","ts":5}"#;
        assert!(decode(missing).is_err());
    }

    /// A reader that hands out its input a few bytes at a time.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(self.0.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn lines(input: &[u8], chunk: usize, max: usize) -> Vec<String> {
        let mut r = LineReader::new(Trickle(input, chunk), max);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push(match l {
                Line::Full(b) => format!("full:{}", String::from_utf8_lossy(b)),
                Line::TooLong(n) => format!("long:{n}"),
                Line::Cut(b) => format!("cut:{}", String::from_utf8_lossy(b)),
            });
        }
        out
    }

    #[test]
    fn line_reader_limits_and_edges() {
        for chunk in [1, 3, 7, 1 << 16] {
            assert_eq!(
                lines(b"a\r\nbb\n\nccc", chunk, 10),
                ["full:a", "full:bb", "full:", "cut:ccc"],
                "chunk {chunk}"
            );
            assert_eq!(
                lines(b"short\n0123456789abcdef\nafter\n", chunk, 10),
                ["full:short", "long:16", "full:after"],
                "chunk {chunk}"
            );
            assert_eq!(
                lines(b"0123456789abc", chunk, 10),
                ["long:13"],
                "chunk {chunk}"
            );
        }
        // Non-UTF-8 bytes pass through as bytes; the caller decides.
        let mut r = LineReader::new(&b"\xff\xfe\n"[..], 10);
        assert_eq!(r.next_line().unwrap(), Some(Line::Full(&b"\xff\xfe"[..])));
        assert_eq!(r.next_line().unwrap(), None);
        assert_eq!(r.next_line().unwrap(), None);
    }

    #[test]
    fn a_huge_line_does_not_grow_memory() {
        let mut input = vec![b'x'; 5 * MAX_LINE];
        input.extend_from_slice(b"\nok\n");
        let mut r = LineReader::new(&input[..], MAX_LINE);
        assert_eq!(r.next_line().unwrap(), Some(Line::TooLong(5 * MAX_LINE)));
        assert!(r.partial.capacity() <= MAX_LINE + READ_BUFFER);
        assert_eq!(r.next_line().unwrap(), Some(Line::Full(&b"ok"[..])));
    }

    use proptest::prelude::*;

    /// What a line reader must return for `input`, by splitting it. The
    /// limit is on the raw line (a `\r` before its `\n` counts).
    fn model(input: &[u8], max: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let last = parts.pop().unwrap_or_default();
        for p in parts {
            out.push(if p.len() > max {
                format!("long:{}", p.len())
            } else {
                let p = p.strip_suffix(b"\r").unwrap_or(p);
                format!("full:{}", String::from_utf8_lossy(p))
            });
        }
        if last.len() > max {
            out.push(format!("long:{}", last.len()));
        } else if !last.is_empty() {
            out.push(format!("cut:{}", String::from_utf8_lossy(last)));
        }
        out
    }

    proptest! {
        #[test]
        fn any_bytes_any_chunks_read_as_their_lines(
            input in prop::collection::vec(prop_oneof![4 => any::<u8>(), 1 => Just(b'\n'), 1 => Just(b'\r')], 0..400),
            chunk in 1usize..70,
            max in 1usize..40,
        ) {
            prop_assert_eq!(lines(&input, chunk, max), model(&input, max));
        }

        #[test]
        fn decoding_any_line_is_a_reason_or_a_message_never_a_panic(
            line in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..200),
                "\\{\"v\":1,\"type\":\"(log|status|complete|health_check|shutdown|error)\"[^\\}]{0,60}\\}".prop_map(String::into_bytes),
            ]
        ) {
            let _ = decode(&line);
        }

        #[test]
        fn every_log_line_round_trips(line in "\\PC{0,40}|[\u{0}-\u{1f}\u{7f}\u{2028}]{0,10}", show in proptest::option::of("\\PC{0,20}")) {
            let msg = Message::new("S-1", Body::Log { stream: Stream::Stdout, line, show });
            let mut out = Vec::new();
            write_message(&mut out, &msg).unwrap();
            prop_assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
            prop_assert_eq!(decode(&out[..out.len() - 1]).unwrap(), msg);
        }
    }
}

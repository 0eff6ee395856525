//! The model as a pprof profile (`profile.proto`, gzipped), so that `go tool pprof`
//! and every tool built on it read what the tracer saw: the goroutines parked at
//! the end, by stack (how many, and for how long in all), and the parks that ended,
//! by blocking site (how many, and how long in all), like Go's block profile. It
//! renders the model as it is; it decides nothing (system and idle goroutines are
//! left out as in every other report).
use std::collections::HashMap;
use std::io::Write;

use flate2::write::GzEncoder;
use prost::Message;

use crate::input::Frame;
use crate::model::Model;
use crate::report::ReportError;

/// The messages of `profile.proto` the profile uses
/// (github.com/google/pprof/proto/profile.proto), field numbers as there.
mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
        #[prost(int64, tag = "3")]
        pub num: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mapping {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "5")]
        pub filename: i64,
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
        #[prost(bool, tag = "10")]
        pub has_inline_frames: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
    }
}

/// The sample types, in the order of every sample's values. `go tool pprof
/// -sample_index=delay` shows the block profile; the default is parked goroutines.
const SAMPLE_TYPES: [(&str, &str); 4] = [
    ("goroutines", "count"),
    ("parked", "nanoseconds"),
    ("contentions", "count"),
    ("delay", "nanoseconds"),
];

/// Interning tables: strings, functions and locations by content.
#[derive(Default)]
struct Builder {
    profile: proto::Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(String, String), u64>,
    locations: HashMap<Frame, u64>,
}

impl Builder {
    fn string(&mut self, s: &str) -> i64 {
        if let Some(i) = self.strings.get(s) {
            return *i;
        }
        let i = self.profile.string_table.len() as i64;
        self.profile.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn location(&mut self, f: &Frame) -> u64 {
        if let Some(id) = self.locations.get(f) {
            return *id;
        }
        let key = (f.function.to_string(), f.file.to_string());
        let function_id = match self.functions.get(&key) {
            Some(id) => *id,
            None => {
                let id = self.profile.function.len() as u64 + 1;
                let name = self.string(&f.function);
                let filename = self.string(&f.file);
                self.profile.function.push(proto::Function {
                    id,
                    name,
                    system_name: name,
                    filename,
                });
                self.functions.insert(key, id);
                id
            }
        };
        let id = self.profile.location.len() as u64 + 1;
        self.profile.location.push(proto::Location {
            id,
            mapping_id: 1,
            line: vec![proto::Line {
                function_id,
                line: i64::from(f.line),
            }],
        });
        self.locations.insert(f.clone(), id);
        id
    }

    fn sample(&mut self, frames: &[Frame], values: [i64; 4], labels: &[(&str, &str)]) {
        let location_id = frames.iter().map(|f| self.location(f)).collect();
        let label = labels
            .iter()
            .map(|(k, v)| proto::Label {
                key: self.string(k),
                str: self.string(v),
                num: 0,
            })
            .collect();
        self.profile.sample.push(proto::Sample {
            location_id,
            value: values.to_vec(),
            label,
        });
    }
}

/// Writes the profile of `model` at `now_ns` (monotonic) to `out`, gzipped.
/// `wall_ns` is the wall-clock time of the profile (Unix ns); `program` the
/// traced executable, which the frames are symbolized from.
pub fn write(
    model: &Model,
    now_ns: u64,
    wall_ns: i64,
    program: &str,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let mut b = Builder::default();
    b.string("");
    // Every frame is already symbolized: one mapping says so, for the program.
    let filename = b.string(program);
    b.profile.mapping.push(proto::Mapping {
        id: 1,
        filename,
        has_functions: true,
        has_filenames: true,
        has_line_numbers: true,
        has_inline_frames: true,
    });
    for (t, u) in SAMPLE_TYPES {
        let vt = proto::ValueType {
            r#type: b.string(t),
            unit: b.string(u),
        };
        b.profile.sample_type.push(vt);
    }
    b.profile.default_sample_type = b.string(SAMPLE_TYPES[0].0);
    let now = model.clock(now_ns);
    // Parked goroutines with the same stack and wait reason are one sample.
    let mut stacks: HashMap<(Vec<Frame>, String), [i64; 2]> = HashMap::new();
    for p in model.parked().filter(|p| !p.system && !p.ignored) {
        let age = now.saturating_sub(p.parked.since_ns) as i64;
        let e = stacks
            .entry((p.parked.frames.to_vec(), p.parked.wait_reason.to_string()))
            .or_default();
        e[0] += 1;
        e[1] += age;
    }
    let mut stacks: Vec<_> = stacks.into_iter().collect();
    stacks.sort_by(|a, b| b.1[0].cmp(&a.1[0]).then_with(|| a.0.cmp(&b.0)));
    for ((frames, reason), [n, total]) in stacks {
        b.sample(&frames, [n, total, 0, 0], &[("wait_reason", &reason)]);
    }
    for h in model.histograms() {
        b.sample(
            std::slice::from_ref(&h.site),
            [0, 0, h.count as i64, h.total_ns as i64],
            &[("wait_reason", &h.wait_reason)],
        );
    }
    b.profile.time_nanos = wall_ns;
    b.profile.duration_nanos = model
        .first_ts()
        .map_or(0, |first| now.saturating_sub(first) as i64);
    let comment = b.string("tracer: parked goroutines (goroutines, parked) and ended parks by site (contentions, delay)");
    b.profile.comment.push(comment);
    let mut gz = GzEncoder::new(out, flate2::Compression::default());
    gz.write_all(&b.profile.encode_to_vec())?;
    gz.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{park, parked, ready, system, SECOND};
    use crate::{Analyzer, Config};
    use std::io::Read as _;

    fn decode(bytes: &[u8]) -> proto::Profile {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .unwrap();
        proto::Profile::decode(raw.as_slice()).unwrap()
    }

    #[test]
    fn parked_goroutines_by_stack_and_ended_parks_by_site() {
        let mut a = Analyzer::new(Config::default()).unwrap();
        a.apply(park(parked(10, SECOND, 42)));
        a.apply(park(parked(11, 2 * SECOND, 42)));
        a.apply(park(system(2, SECOND, "runtime.bgsweep")));
        a.apply(park(parked(12, SECOND, 50)));
        a.apply(ready(4 * SECOND, 12, Some(3 * SECOND)));
        let mut out = Vec::new();
        write(a.model(), 11 * SECOND, 0, "/bin/app", &mut out).unwrap();
        let p = decode(&out);
        let s = |i: i64| p.string_table[i as usize].as_str();
        let types: Vec<&str> = p.sample_type.iter().map(|t| s(t.r#type)).collect();
        assert_eq!(types, ["goroutines", "parked", "contentions", "delay"]);
        // Goroutines 10 and 11: one stack, two goroutines, parked 10 s + 9 s.
        assert_eq!(p.sample[0].value, [2, 19 * SECOND as i64, 0, 0]);
        let top = &p.location[p.sample[0].location_id[3] as usize - 1];
        let f = &p.function[top.line[0].function_id as usize - 1];
        assert_eq!((s(f.name), top.line[0].line), ("main.send", 42));
        assert_eq!(s(p.sample[0].label[0].str), "chan send");
        // The runtime's own goroutine is left out; the ended park is a block sample.
        assert_eq!(p.sample.len(), 2);
        assert_eq!(p.sample[1].value, [0, 0, 1, 3 * SECOND as i64]);
    }
}

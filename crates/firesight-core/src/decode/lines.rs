//! Incremental splitting of a byte stream into CSV records, with line numbers.

use super::{Decoded, Rejected};
use crate::event::FieldError;

/// A CSV format: built from the header line, then decodes one record at a time.
pub trait RecordDecoder: Sized {
    /// What one line becomes.
    type Item;
    /// Recognises the header; an unusable header refuses the whole input.
    fn from_header(header: &csv::StringRecord) -> Result<Self, FieldError>;
    /// Decodes one record (`line` is 1-based, the header being line 1).
    fn decode(&self, line: u64, record: &csv::StringRecord) -> Result<Self::Item, FieldError>;
}

/// Anything that turns a byte stream into decoded items: CSV formats and NDJSON.
pub trait StreamDecoder {
    /// What one line becomes.
    type Item;
    /// Feeds a chunk; complete lines are decoded into `out`. A header error stops the input.
    fn push(&mut self, chunk: &[u8], out: &mut Vec<Decoded<Self::Item>>) -> Result<(), FieldError>;
    /// Flushes the last line when the input did not end with a newline.
    fn finish(&mut self, out: &mut Vec<Decoded<Self::Item>>) -> Result<(), FieldError>;
    /// Lines seen so far, header included.
    fn lines_seen(&self) -> u64;
}

/// The longest line (one record) accepted, bytes. FIRMS rows are about 100 bytes and an NDJSON
/// event well under 4 KiB; a longer line is refused as a record of its own, and its bytes past
/// the excerpt kept for the dead letter are dropped as they arrive, never buffered.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Bytes of an over-long line kept for its dead letter.
const EXCERPT_BYTES: usize = 256;

/// Splits bytes into lines (LF or CRLF) across chunk boundaries; a line over
/// [`MAX_LINE_BYTES`] comes out as a [`Rejected`] naming field `line`.
#[derive(Default)]
pub(crate) struct LineSplitter {
    pending: Vec<u8>,
    /// Bytes of the current line beyond what `pending` kept, once it is over the limit.
    dropped: usize,
    line: u64,
}

impl LineSplitter {
    /// Calls `each(line_no, text)` for every complete line in `chunk`.
    pub(crate) fn push(&mut self, chunk: &[u8], mut each: impl FnMut(u64, Result<&str, Rejected>)) {
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.take(&rest[..pos]);
            self.emit(&mut each);
            rest = &rest[pos + 1..];
        }
        self.take(rest);
    }

    /// Emits a final line that had no newline.
    pub(crate) fn finish(&mut self, mut each: impl FnMut(u64, Result<&str, Rejected>)) {
        if !self.pending.is_empty() || self.dropped > 0 {
            self.emit(&mut each);
        }
    }

    /// Lines emitted so far.
    pub(crate) fn lines(&self) -> u64 {
        self.line
    }

    /// Adds part of the current line, keeping only an excerpt once it is over the limit.
    fn take(&mut self, part: &[u8]) {
        if self.dropped == 0 && self.pending.len() + part.len() <= MAX_LINE_BYTES {
            self.pending.extend_from_slice(part);
            return;
        }
        if self.dropped == 0 {
            self.dropped = self.pending.len().saturating_sub(EXCERPT_BYTES);
            self.pending.truncate(EXCERPT_BYTES);
        }
        let room = EXCERPT_BYTES
            .saturating_sub(self.pending.len())
            .min(part.len());
        self.pending.extend_from_slice(&part[..room]);
        self.dropped += part.len() - room;
    }

    fn emit(&mut self, each: &mut impl FnMut(u64, Result<&str, Rejected>)) {
        self.line += 1;
        if self.dropped > 0 {
            let length = self.pending.len() + self.dropped;
            let rejected = Rejected {
                error: FieldError::new(
                    self.line,
                    "line",
                    format!(
                        "is {length} bytes long, over the limit of {MAX_LINE_BYTES} bytes per record (its first {} bytes are kept here)",
                        self.pending.len()
                    ),
                ),
                raw: String::from_utf8_lossy(&self.pending).into_owned(),
            };
            each(self.line, Err(rejected));
        } else {
            if self.pending.last() == Some(&b'\r') {
                self.pending.pop();
            }
            let text = String::from_utf8_lossy(&self.pending);
            each(self.line, Ok(&text));
        }
        self.pending.clear();
        self.dropped = 0;
    }
}

/// A CSV input decoded line by line with the format `D` chosen by its header.
pub struct CsvStream<D: RecordDecoder> {
    splitter: LineSplitter,
    parser: LineParser,
    decoder: Option<D>,
    header_error: Option<FieldError>,
}

impl<D: RecordDecoder> Default for CsvStream<D> {
    fn default() -> Self {
        Self {
            splitter: LineSplitter::default(),
            parser: LineParser::default(),
            decoder: None,
            header_error: None,
        }
    }
}

impl<D: RecordDecoder> CsvStream<D> {
    /// A decoder waiting for its header line.
    pub fn new() -> Self {
        Self::default()
    }

    fn handle(&mut self, line: u64, text: Result<&str, Rejected>, out: &mut Vec<Decoded<D::Item>>) {
        if self.header_error.is_some() {
            return;
        }
        let text = match text {
            Ok(text) => text,
            Err(rejected) if self.decoder.is_none() => {
                self.header_error = Some(rejected.error);
                return;
            }
            Err(rejected) => {
                out.push(Err(rejected));
                return;
            }
        };
        if text.trim().is_empty() {
            return;
        }
        let record = match self.parser.parse(line, text) {
            Ok(record) => record,
            Err(error) => {
                if self.decoder.is_none() {
                    self.header_error = Some(error);
                } else {
                    out.push(Err(Rejected {
                        error,
                        raw: text.to_owned(),
                    }));
                }
                return;
            }
        };
        match &self.decoder {
            None => match D::from_header(&record) {
                Ok(decoder) => self.decoder = Some(decoder),
                Err(error) => self.header_error = Some(error),
            },
            Some(decoder) => out.push(
                decoder
                    .decode(line, &record)
                    .map(|item| (line, item))
                    .map_err(|error| Rejected {
                        error,
                        raw: text.to_owned(),
                    }),
            ),
        }
    }

    fn status(&self) -> Result<(), FieldError> {
        self.header_error.clone().map_or(Ok(()), Err)
    }
}

impl<D: RecordDecoder> StreamDecoder for CsvStream<D> {
    type Item = D::Item;

    fn push(&mut self, chunk: &[u8], out: &mut Vec<Decoded<D::Item>>) -> Result<(), FieldError> {
        let mut splitter = std::mem::take(&mut self.splitter);
        splitter.push(chunk, |line, text| self.handle(line, text, out));
        self.splitter = splitter;
        self.status()
    }

    fn finish(&mut self, out: &mut Vec<Decoded<D::Item>>) -> Result<(), FieldError> {
        let mut splitter = std::mem::take(&mut self.splitter);
        splitter.finish(|line, text| self.handle(line, text, out));
        self.splitter = splitter;
        self.status()?;
        if self.decoder.is_none() {
            return Err(FieldError::new(
                1,
                "header",
                "the input is empty: no header line",
            ));
        }
        Ok(())
    }

    fn lines_seen(&self) -> u64 {
        self.splitter.lines()
    }
}

/// Parses one physical line as a CSV record.
/// Parses one line as a CSV record (RFC 4180 quoting, as the `csv` crate reads it, a leading
/// byte-order mark dropped), with buffers kept across lines: building a `csv` reader per line
/// cost more than the parse.
struct LineParser {
    reader: csv_core::Reader,
    fields: Vec<u8>,
    ends: Vec<usize>,
}

impl Default for LineParser {
    fn default() -> Self {
        Self {
            // `Reader::new`, not `Reader::default`: the derived default has no delimiter or quote.
            reader: csv_core::Reader::new(),
            fields: Vec::new(),
            ends: Vec::new(),
        }
    }
}

impl LineParser {
    fn parse(&mut self, line: u64, text: &str) -> Result<csv::StringRecord, FieldError> {
        let input = text.strip_prefix('\u{feff}').unwrap_or(text).as_bytes();
        self.reader.reset();
        // A field is never longer than the line, and there are at most one more fields than bytes.
        self.fields.resize(input.len(), 0);
        self.ends.resize(input.len() + 1, 0);
        let (mut read, mut written, mut ended) = (0, 0, 0);
        loop {
            let (result, nin, nout, nend) = self.reader.read_record(
                &input[read..],
                &mut self.fields[written..],
                &mut self.ends[ended..],
            );
            read += nin;
            written += nout;
            ended += nend;
            match result {
                csv_core::ReadRecordResult::Record => break,
                csv_core::ReadRecordResult::End => {
                    return Err(FieldError::new(line, "line", "no CSV record on the line"));
                }
                // All input given: the next call, with none, ends the record.
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull
                | csv_core::ReadRecordResult::OutputEndsFull => {
                    return Err(FieldError::new(line, "line", "not valid CSV"));
                }
            }
        }
        let mut record = csv::ByteRecord::with_capacity(written, ended);
        let mut start = 0;
        for &end in &self.ends[..ended] {
            record.push_field(&self.fields[start..end]);
            start = end;
        }
        csv::StringRecord::from_byte_record(record)
            .map_err(|e| FieldError::new(line, "line", format!("not valid CSV: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parser kept across lines reads a line as the `csv` crate's own reader does.
    #[test]
    fn the_line_parser_reads_lines_as_the_csv_crate_does() {
        let lines = [
            "latitude,longitude,brightness,scan,track,acq_date,acq_time,satellite",
            "-11.807,142.0583,313,1,1,2019-08-01,0056,Terra",
            "\u{feff}latitude,longitude",
            "a,,\"b,c\",\"say \"\"hi\"\"\",",
            "\"unclosed,quote",
            " spaced , cells ",
            ",",
            "x",
            "é,ü,\"ß\"",
        ];
        let mut parser = LineParser::default();
        for (i, line) in lines.iter().enumerate() {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(line.as_bytes());
            let mut expected = csv::StringRecord::new();
            assert!(reader.read_record(&mut expected).expect("csv reads it"));
            let got = parser.parse(i as u64 + 1, line).expect("parsed");
            assert_eq!(got, expected, "line {line:?}");
        }
    }

    #[test]
    fn lines_split_across_chunks_and_crlf() {
        let mut splitter = LineSplitter::default();
        let mut seen = Vec::new();
        let mut record = |n: u64, t: Result<&str, Rejected>| {
            seen.push((n, t.map(str::to_owned).map_err(|r| r.error.reason)))
        };
        splitter.push(b"a,b\r\nc,", &mut record);
        splitter.push(b"d\r\ne", &mut record);
        splitter.finish(&mut record);
        assert_eq!(
            seen,
            vec![
                (1, Ok("a,b".into())),
                (2, Ok("c,d".into())),
                (3, Ok("e".into()))
            ]
        );
    }

    #[test]
    fn an_over_long_line_is_one_refused_record_and_never_buffered_whole() {
        let mut splitter = LineSplitter::default();
        let mut seen = Vec::new();
        let mut record = |n: u64, t: Result<&str, Rejected>| {
            seen.push((
                n,
                t.map(str::to_owned)
                    .map_err(|r| (r.error.field, r.raw.len())),
            ))
        };
        splitter.push(b"ok\n", &mut record);
        let block = vec![b'x'; 64 * 1024];
        for _ in 0..40 {
            splitter.push(&block, &mut record);
            assert!(splitter.pending.len() <= MAX_LINE_BYTES);
        }
        splitter.push(b"\nnext\n", &mut record);
        splitter.push(&vec![b'y'; MAX_LINE_BYTES + 1], &mut record);
        splitter.finish(&mut record);
        assert_eq!(
            seen,
            vec![
                (1, Ok("ok".into())),
                (2, Err(("line".into(), EXCERPT_BYTES))),
                (3, Ok("next".into())),
                (4, Err(("line".into(), EXCERPT_BYTES))),
            ]
        );
        assert_eq!(splitter.lines(), 4);
    }
}

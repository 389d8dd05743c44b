//! The files of a run directory: each set of rows as a JSON array and as CSV with the same
//! names, written as rows arrive so that nothing waits in memory and a stopped run still
//! leaves complete files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", path.display())]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl WriteError {
    pub fn new(path: &Path, source: std::io::Error) -> Self {
        Self {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Rows going into `<stem>.json` and `<stem>.csv`.
pub struct RowWriter {
    json_path: PathBuf,
    csv_path: PathBuf,
    json: BufWriter<File>,
    csv: csv::Writer<BufWriter<File>>,
    rows: u64,
}

impl RowWriter {
    pub fn create(dir: &Path, stem: &str) -> Result<Self, WriteError> {
        let json_path = dir.join(format!("{stem}.json"));
        let csv_path = dir.join(format!("{stem}.csv"));
        let open = |path: &Path| {
            File::create(path)
                .map(BufWriter::new)
                .map_err(|e| WriteError::new(path, e))
        };
        let mut json = open(&json_path)?;
        json.write_all(b"[")
            .map_err(|e| WriteError::new(&json_path, e))?;
        let csv = csv::Writer::from_writer(open(&csv_path)?);
        Ok(Self {
            json_path,
            csv_path,
            json,
            csv,
            rows: 0,
        })
    }

    pub fn write<T: Serialize>(&mut self, row: &T) -> Result<(), WriteError> {
        let separator: &[u8] = if self.rows == 0 { b"\n  " } else { b",\n  " };
        self.json
            .write_all(separator)
            .and_then(|()| serde_json::to_writer(&mut self.json, row).map_err(Into::into))
            .map_err(|e| WriteError::new(&self.json_path, e))?;
        self.csv
            .serialize(row)
            .map_err(|e| WriteError::new(&self.csv_path, csv_error(e)))?;
        self.rows += 1;
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Closes the JSON array and flushes both files.
    pub fn finish(mut self) -> Result<(), WriteError> {
        let end: &[u8] = if self.rows == 0 { b"]\n" } else { b"\n]\n" };
        self.json
            .write_all(end)
            .and_then(|()| self.json.flush())
            .map_err(|e| WriteError::new(&self.json_path, e))?;
        self.csv
            .flush()
            .map_err(|e| WriteError::new(&self.csv_path, e))
    }
}

fn csv_error(error: csv::Error) -> std::io::Error {
    match error.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

/// Writes all `rows` at once as `<stem>.json` and `<stem>.csv`.
pub fn write_rows<T: Serialize>(dir: &Path, stem: &str, rows: &[T]) -> Result<(), WriteError> {
    let mut writer = RowWriter::create(dir, stem)?;
    for row in rows {
        writer.write(row)?;
    }
    writer.finish()
}

/// Writes one JSON document, pretty-printed.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), WriteError> {
    let text = serde_json::to_string_pretty(value).expect("results serialise as JSON");
    std::fs::write(path, text + "\n").map_err(|e| WriteError::new(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        pod_name: String,
        latency: Option<f64>,
        count: u64,
    }

    #[test]
    fn json_and_csv_hold_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![
            Row {
                pod_name: "a,b".into(),
                latency: Some(2003.5),
                count: 1,
            },
            Row {
                pod_name: "c\"d".into(),
                latency: None,
                count: 2,
            },
        ];
        write_rows(dir.path(), "rows", &rows).unwrap();
        let from_json: Vec<Row> =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("rows.json")).unwrap())
                .unwrap();
        assert_eq!(from_json, rows);
        let mut reader = csv::Reader::from_path(dir.path().join("rows.csv")).unwrap();
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            ["podName", "latency", "count"]
        );
        let from_csv: Vec<Row> = reader.deserialize().map(Result::unwrap).collect();
        assert_eq!(from_csv, rows);

        write_rows::<Row>(dir.path(), "empty", &[]).unwrap();
        let empty: Vec<Row> =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("empty.json")).unwrap())
                .unwrap();
        assert!(empty.is_empty());
    }
}

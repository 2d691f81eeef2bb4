//! An export job's files: one ndjson file per resource type in the job's own folder, written
//! line by line (never the whole population in memory), with each file's line count and size
//! recorded after every page of patients. A job resumed after a restart cuts each file back to
//! the size recorded with its cursor, so nothing is written twice and nothing is lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncWriteExt, BufWriter};

/// One output file's line count and size at the last recorded page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSize {
    /// Resources written.
    pub count: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// The file name of a type's output (types are R4 resource type names: letters only).
pub fn file_name(resource_type: &str) -> String {
    format!("{resource_type}.ndjson")
}

/// Whether `name` is a file name this module writes (so a download path cannot leave the
/// job's folder).
pub fn is_output_name(name: &str) -> bool {
    name.strip_suffix(".ndjson").is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// The open output files of one job.
pub struct Outputs {
    folder: PathBuf,
    files: BTreeMap<String, (BufWriter<File>, FileSize)>,
}

impl Outputs {
    /// Opens the job's folder, cutting every file named in `recorded` back to its recorded
    /// size and removing any file it does not name (written after the last recorded page).
    pub async fn resume(folder: &Path, recorded: &BTreeMap<String, FileSize>) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(folder).await?;
        let mut entries = tokio::fs::read_dir(folder).await?;
        while let Some(entry) = entries.next_entry().await? {
            let name = entry.file_name().to_string_lossy().into_owned();
            let known = name.strip_suffix(".ndjson").is_some_and(|t| recorded.contains_key(t));
            if !known {
                tokio::fs::remove_file(entry.path()).await?;
            }
        }
        let mut files = BTreeMap::new();
        for (resource_type, size) in recorded {
            let path = folder.join(file_name(resource_type));
            let file = OpenOptions::new().create(true).write(true).truncate(false).open(&path).await?;
            // A file shorter than recorded was not written here (another replica's disk, or a
            // folder restored from elsewhere): padding it would pass zeros off as data.
            if file.metadata().await?.len() < size.bytes {
                return Err(std::io::Error::other("an output file is shorter than its recorded size"));
            }
            file.set_len(size.bytes).await?;
            let mut file = BufWriter::new(file);
            tokio::io::AsyncSeekExt::seek(file.get_mut(), std::io::SeekFrom::Start(size.bytes)).await?;
            files.insert(resource_type.clone(), (file, *size));
        }
        Ok(Self { folder: folder.to_owned(), files })
    }

    /// Appends one resource (`line`, a JSON object without newlines) to its type's file.
    pub async fn write(&mut self, resource_type: &str, line: &[u8]) -> std::io::Result<()> {
        if !self.files.contains_key(resource_type) {
            let path = self.folder.join(file_name(resource_type));
            let file = OpenOptions::new().create(true).write(true).truncate(true).open(&path).await?;
            self.files.insert(resource_type.to_owned(), (BufWriter::new(file), FileSize::default()));
        }
        if let Some((file, size)) = self.files.get_mut(resource_type) {
            file.write_all(line).await?;
            file.write_all(b"\n").await?;
            size.count += 1;
            size.bytes += line.len() as u64 + 1;
        }
        Ok(())
    }

    /// Flushes and syncs every file, and returns the sizes to record with the cursor.
    pub async fn checkpoint(&mut self) -> std::io::Result<BTreeMap<String, FileSize>> {
        for (file, _) in self.files.values_mut() {
            file.flush().await?;
            file.get_ref().sync_data().await?;
        }
        Ok(self.sizes())
    }

    /// The sizes written so far.
    pub fn sizes(&self) -> BTreeMap<String, FileSize> {
        self.files.iter().map(|(t, (_, s))| (t.clone(), *s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_resumed_job_cuts_its_files_back_to_the_last_recorded_page() {
        let dir = std::env::temp_dir().join(format!("tideway-output-{}", uuid::Uuid::new_v4()));
        let mut out = Outputs::resume(&dir, &BTreeMap::new()).await.unwrap();
        out.write("Patient", br#"{"resourceType":"Patient","id":"a"}"#).await.unwrap();
        let recorded = out.checkpoint().await.unwrap();
        // Written after the checkpoint, then the process dies: these lines must not survive.
        out.write("Patient", br#"{"resourceType":"Patient","id":"b"}"#).await.unwrap();
        out.write("Condition", br#"{"resourceType":"Condition","id":"c"}"#).await.unwrap();
        out.checkpoint().await.unwrap();
        drop(out);
        let mut resumed = Outputs::resume(&dir, &recorded).await.unwrap();
        assert_eq!(resumed.sizes(), recorded);
        assert!(!dir.join("Condition.ndjson").exists(), "a file begun after the checkpoint goes");
        resumed.write("Patient", br#"{"resourceType":"Patient","id":"b"}"#).await.unwrap();
        resumed.checkpoint().await.unwrap();
        let text = std::fs::read_to_string(dir.join("Patient.ndjson")).unwrap();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [r#"{"resourceType":"Patient","id":"a"}"#, r#"{"resourceType":"Patient","id":"b"}"#]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_type_named_files_can_be_downloaded() {
        assert!(is_output_name("Condition.ndjson"));
        for bad in ["../x.ndjson", ".ndjson", "Patient.json", "a/b.ndjson", "Patient.ndjson.tmp"] {
            assert!(!is_output_name(bad), "{bad}");
        }
    }
}

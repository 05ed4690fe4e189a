//! The set of definitions a process knows: the current version of each workflow (as
//! loaded from `workflows/`) and, by hash, every version a case may have pinned.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use super::{Catalog, Definition, DefinitionError, Problem};

#[derive(Debug, Default)]
pub struct Registry {
    catalog: Catalog,
    current: BTreeMap<String, Arc<Definition>>,
    by_hash: RwLock<HashMap<String, Arc<Definition>>>,
}

impl Registry {
    /// Loads every `*.toml` in `dir`; all files' problems are reported together.
    pub fn load_dir(dir: &Path, catalog: Catalog) -> Result<Registry, DefinitionError> {
        let files = toml_files(dir).map_err(|e| DefinitionError {
            problems: vec![Problem {
                file: dir.display().to_string(),
                line: 0,
                message: format!("cannot list the workflow folder: {e}"),
            }],
        })?;
        let mut registry = Registry {
            catalog,
            ..Registry::default()
        };
        let mut problems = Vec::new();
        for file in files {
            match Definition::load(&file, &registry.catalog) {
                Ok(def) => registry.insert(def),
                Err(e) => problems.extend(e.problems),
            }
        }
        if problems.is_empty() {
            Ok(registry)
        } else {
            Err(DefinitionError { problems })
        }
    }

    /// Makes `def` the current version of its workflow.
    pub fn insert(&mut self, def: Definition) {
        let def = Arc::new(def);
        self.by_hash
            .write()
            .expect("registry lock poisoned")
            .insert(def.hash.clone(), def.clone());
        self.current.insert(def.name.clone(), def);
    }

    /// The templates the definitions were checked against (stored versions are compiled
    /// against it too).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn current(&self, name: &str) -> Option<Arc<Definition>> {
        self.current.get(name).cloned()
    }

    pub fn all_current(&self) -> impl Iterator<Item = &Arc<Definition>> {
        self.current.values()
    }

    /// A pinned version, if this process has compiled it.
    pub fn by_hash(&self, hash: &str) -> Option<Arc<Definition>> {
        self.by_hash.read().expect("registry lock poisoned").get(hash).cloned()
    }

    /// The `*.toml` files of a folder (shared with the workers' configuration).
    pub fn toml_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        toml_files(dir)
    }

    /// Remembers an older version compiled from its stored source.
    pub fn remember(&self, def: Definition) -> Arc<Definition> {
        let def = Arc::new(def);
        self.by_hash
            .write()
            .expect("registry lock poisoned")
            .insert(def.hash.clone(), def.clone());
        def
    }
}

/// The `*.toml` files of a folder, sorted so that reports are stable.
pub fn toml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

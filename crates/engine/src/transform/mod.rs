//! Transformations (`$(pv{s.len})`): being written; see the module docs once it lands.

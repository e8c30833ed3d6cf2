//! Every WGSL file in shaders/ parses and validates with naga, so a typo fails here with a
//! line number instead of as a pipeline-creation panic on someone's GPU.

#[test]
fn every_shader_parses_and_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("wgsl") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.emit_to_string_with_path(&src, &path.display().to_string())
            )
        });
        // No optional capabilities: the shaders must run on any WebGPU-level adapter, except
        // the subgroup family, which says so in a `// requires: subgroups` line and has a
        // portable twin.
        let subgroups = src.lines().any(|l| l.starts_with("// requires: subgroups"));
        let (caps, stages, ops) = if subgroups {
            (
                naga::valid::Capabilities::SUBGROUP,
                naga::valid::ShaderStages::COMPUTE,
                naga::valid::SubgroupOperationSet::all(),
            )
        } else {
            (
                naga::valid::Capabilities::empty(),
                naga::valid::ShaderStages::empty(),
                naga::valid::SubgroupOperationSet::empty(),
            )
        };
        let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
        validator.subgroup_stages(stages).subgroup_operations(ops);
        validator.validate(&module).unwrap_or_else(|e| {
            panic!(
                "{}",
                e.emit_to_string_with_path(&src, &path.display().to_string())
            )
        });
        count += 1;
    }
    assert!(
        count >= 8,
        "expected every stage's shader in {}, found {count}",
        dir.display()
    );
}

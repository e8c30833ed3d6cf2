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
        within_webgpu_default_limits(&module, &path);
        count += 1;
    }
    assert!(
        count >= 8,
        "expected every stage's shader in {}, found {count}",
        dir.display()
    );
}

/// What every WebGPU implementation must give without asking (the spec's default limits):
/// browsers often give little more (Chromium on SwiftShader: 10 storage buffers per stage).
/// Counted per file, over all its entry points, so the count bounds each one's.
fn within_webgpu_default_limits(module: &naga::Module, path: &std::path::Path) {
    let storage = module
        .global_variables
        .iter()
        .filter(|(_, g)| matches!(g.space, naga::AddressSpace::Storage { .. }))
        .count();
    assert!(
        storage <= 8,
        "{}: {storage} storage buffers, over WebGPU's default of 8 per stage",
        path.display()
    );
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).unwrap();
    let workgroup_bytes: u32 = module
        .global_variables
        .iter()
        .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
        .map(|(_, g)| layouter[g.ty].size)
        .sum();
    assert!(
        workgroup_bytes <= 16384,
        "{}: {workgroup_bytes} bytes of workgroup memory, over WebGPU's default of 16 KiB",
        path.display()
    );
    for ep in &module.entry_points {
        let invocations: u32 = ep.workgroup_size.iter().product();
        assert!(
            invocations <= 256,
            "{} {}: {invocations} invocations per workgroup, over WebGPU's default of 256",
            path.display(),
            ep.name
        );
    }
}

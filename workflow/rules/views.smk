# Per input, two more jobs (with views enabled): extract_views (each scene's views as 8-bit PNGs, and
# their records) and mix (each view's ISCC-IMAGE, the scene's ISCC-MIXED, and with the scene's
# ISCC-SUM its composite ISCC-CODE). Same defaults as `bioiscc imagecode`, so its codes equal the
# workflow's. The algorithm is docs/views.md (bioiscc-views/1).


rule extract_views:
    input:
        walk="results/{key}/walk.json",
        source=input_path,
    output:
        directory("results/{key}/views"),
    log:
        "logs/{key}/extract_views.log",
    benchmark:
        "logs/{key}/extract_views.benchmark.tsv"
    group:
        "bioiscc_input"
    conda:
        "../../envs/bioiscc.yaml"
    threads: 1
    resources:
        mem_mb=read_mem_mb,
        runtime=runtime_minutes,
    params:
        source=input_source,
        options=view_options(config["views"]),
    shell:
        # views.jsonl sits in the folder of the PNGs: their paths in it are relative to it.
        "mkdir -p {output:q}"
        " && (bioiscc views {params.options} -o {output:q} --record-errors -- {params.source:q}"
        " > {output:q}/views.jsonl"
        " || bioiscc failed-record views --exit-status $? -o {output:q}/views.jsonl"
        " -- {params.source:q})"
        " 2> {log:q}"


rule mix:
    input:
        views="results/{key}/views",
        scenes="results/{key}/scenes.jsonl",
    output:
        "results/{key}/image.jsonl",
    log:
        "logs/{key}/mix.log",
    benchmark:
        "logs/{key}/mix.benchmark.tsv"
    group:
        "bioiscc_input"
    conda:
        "../../envs/bioiscc.yaml"
    threads: 1
    resources:
        mem_mb=light_mem_mb,
        runtime=light_runtime,
    params:
        source=input_source,
        bits=config["views"]["bits"],
    shell:
        "(bioiscc mix {input.views:q}/views.jsonl --sum {input.scenes:q} --bits {params.bits}"
        " --record-errors -o {output:q}"
        " || bioiscc failed-record mix --exit-status $? --bits {params.bits} -o {output:q}"
        " -- {params.source:q})"
        " 2> {log:q}"

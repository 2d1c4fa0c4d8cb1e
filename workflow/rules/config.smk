"""The configuration: booleans given as words on the command line, then the schema's validation
(which also fills in every default)."""

from pathlib import Path

from snakemake.utils import validate

#: the spellings of booleans accepted from the command line (--config retry_failed=false)
BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "1": True}
BOOLEAN_WORDS |= {"false": False, "no": False, "off": False, "0": False}


def booleans_from_words(settings, schema):
    """Turn the words of boolean keys (`--config` gives them as strings) into booleans."""
    for key, spec in schema.get("properties", {}).items():
        value = settings.get(key)
        if spec.get("type") == "boolean" and isinstance(value, str):
            settings[key] = BOOLEAN_WORDS.get(value.strip().lower(), value)
        elif spec.get("type") == "object" and isinstance(value, dict):
            booleans_from_words(value, spec)


def config_schema():
    import yaml

    path = Path(workflow.current_basedir) / ".." / "schemas" / "config.schema.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


booleans_from_words(config, config_schema())
validate(config, "../schemas/config.schema.yaml")

#!/usr/bin/env python3
"""Writes hostsim/proto/k8s.schema: the protobuf schema of the Kubernetes API types that
hostsim's protobuf decoder (src/api/protobuf.rs) turns into descriptors for prost-reflect.

Sources, both crates.io packages fetched with cargo:
  - k8s-pb (kube-rs's prost bindings of the Kubernetes protos): messages, field numbers and
    types. prost renames fields to snake_case and messages to UpperCamelCase, so
  - k8s-openapi gives the exact JSON names of the fields ("hostIP", "$ref", ...), matched by
    module, type and letters (then by type in any version, then by field anywhere); a field it
    does not know keeps lowerCamelCase of its snake_case. A message field that the type in
    k8s-openapi lacks is a Go struct embedded inline.

Usage: hostsim/proto/generate.py [--k8s-pb VERSION] [--k8s-openapi VERSION]
Prints the fields whose JSON name had to be guessed on stderr.

Format of the output, one item a line:
  package <proto package>
  message <Name>
  <number> <json name> <type>
where a JSON name starting with `+` marks a Go struct embedded inline (its fields are the
enclosing object's in JSON), and <type> is a scalar (string int32 int64 bool double bytes), a
message (`.package.Name`, or `Name` in the same package), `[]<type>` for a repeated field or
`map:<key>:<type>`.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def crate_dirs(pb_version, openapi_version):
    """The source directories of both crates, downloaded by `cargo metadata`."""
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "src"))
        with open(os.path.join(tmp, "src", "lib.rs"), "w"):
            pass
        with open(os.path.join(tmp, "Cargo.toml"), "w") as f:
            f.write(
                "[package]\nname = \"schema-sources\"\nversion = \"0.0.0\"\nedition = \"2021\"\n"
                "[workspace]\n[dependencies]\n"
                f"k8s-pb = \"={pb_version}\"\nk8s-openapi = \"={openapi_version}\"\n"
            )
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1"],
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    dirs = {}
    for pkg in json.loads(out)["packages"]:
        if pkg["name"] in ("k8s-pb", "k8s-openapi"):
            dirs[pkg["name"]] = os.path.dirname(pkg["manifest_path"])
    return dirs["k8s-pb"], dirs["k8s-openapi"]


def letters(name):
    return re.sub(r"[^a-z0-9]", "", name.lower())


def lower_camel(snake):
    parts = snake.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def openapi_names(openapi_dir):
    """(module path, letters of the type) -> {letters of the field: JSON name}."""
    names = {}
    src = os.path.join(openapi_dir, "src")
    # Newest first: a type that left the API keeps its names from an older release.
    versions = sorted(
        (d for d in os.listdir(src) if re.fullmatch(r"v1_\d+", d)),
        key=lambda v: int(v.split("_")[1]),
        reverse=True,
    )
    for version in versions:
        root = os.path.join(src, version)
        for dirpath, _, files in sorted(os.walk(root)):
            module = os.path.relpath(dirpath, root)
            for file in sorted(files):
                if not file.endswith(".rs") or file == "mod.rs":
                    continue
                text = open(os.path.join(dirpath, file)).read()
                m = re.search(r"^pub struct (\w+)", text, re.M)
                if not m:
                    continue
                key = (module, letters(m.group(1)))
                fields = {}
                for json_name, _ in re.findall(r'"([^"]+)" => Field::Key_(\w+),', text):
                    fields[letters(json_name)] = json_name
                names.setdefault(key, {})
                for k, v in fields.items():
                    names[key].setdefault(k, v)
    return names


SCALARS = {"string", "int32", "int64", "bool", "double", "bytes"}

# JSON names lowerCamelCase does not give, of types k8s-openapi does not have (not in OpenAPI).
OVERRIDES = {
    "insecure_skip_tls_verify_backend": "insecureSkipTLSVerifyBackend",
    "desired_api_version": "desiredAPIVersion",
}


def rust_path(ty):
    """The message path inside an Option/Vec/Box/map type: `super::super::x::Y` or `Y`."""
    ty = re.sub(r"\s+", "", ty).replace(",>", ">").rstrip(",")
    for wrapper in (
        "::core::option::Option<",
        "::prost::alloc::vec::Vec<",
        "::prost::alloc::boxed::Box<",
    ):
        while ty.startswith(wrapper):
            ty = ty[len(wrapper) : -1]
    if ty.startswith("::prost::alloc::collections::BTreeMap<"):
        inner = ty[len("::prost::alloc::collections::BTreeMap<") : -1]
        ty = inner.split(",", 1)[1]
        return rust_path(ty)
    return ty


def resolve(module, path):
    """The module and name a Rust path refers to from `module` (`api/apps/v1`)."""
    parts = path.split("::")
    mod = module.split("/")
    while parts and parts[0] == "super":
        parts.pop(0)
        mod.pop()
    return "/".join(mod + parts[:-1]), parts[-1]


def package(module):
    return "k8s.io." + module.replace("/", ".")


def parse_pb(pb_dir):
    """module -> [(message, [(number, rust field name, label, kind, target)])]."""
    src = os.path.join(pb_dir, "src")
    modules = {}
    for dirpath, _, files in sorted(os.walk(src)):
        if "mod.rs" not in files:
            continue
        module = os.path.relpath(dirpath, src)
        if module == "." or "testapigroup" in module:
            continue
        text = open(os.path.join(dirpath, "mod.rs")).read()
        text = re.sub(r"^\s*///.*\n", "", text, flags=re.M)
        messages = []
        for m in re.finditer(r"^pub struct (\w+) \{(\}|\n.*?^\})", text, re.M | re.S):
            body = m.group(2)
            fields = []
            for f in re.finditer(
                r"#\[prost\((.*?)\)\]\s*pub (?:r#)?(\w+):\s*(.*?),\n(?=\s*(?:#\[|pub |\}|$))",
                body,
                re.S,
            ):
                attrs, name, ty = f.group(1), f.group(2), f.group(3)
                number = int(re.search(r'tag = "(\d+)"', attrs).group(1))
                mm = re.match(r'btree_map = "(\w+), (\w+)"', attrs)
                if mm:
                    key, value = mm.groups()
                    target = None
                    if value == "message":
                        target = resolve(module, rust_path(ty))
                    fields.append((number, name, "map", (key, value), target))
                    continue
                kind = attrs.split(",")[0].strip()
                if kind.startswith("bytes"):
                    kind = "bytes"
                label = "repeated" if ", repeated" in attrs else "optional"
                target = resolve(module, rust_path(ty)) if kind == "message" else None
                if kind not in SCALARS and kind != "message":
                    raise SystemExit(f"unknown field kind {attrs!r} in {module}::{m.group(1)}")
                fields.append((number, name, label, kind, target))
            messages.append((m.group(1), sorted(fields)))
        if messages:
            modules[module] = messages
    return modules


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k8s-pb", default="0.9.0")
    ap.add_argument("--k8s-openapi", default="0.29.0")
    ap.add_argument("--out", default=os.path.join(HERE, "k8s.schema"))
    args = ap.parse_args()
    pb_dir, openapi_dir = crate_dirs(args.k8s_pb, args.k8s_openapi)
    names = openapi_names(openapi_dir)
    by_type = {}
    everywhere = {}
    for (module, type_letters), fields in names.items():
        for k, v in fields.items():
            by_type.setdefault(type_letters, {}).setdefault(k, v)
            everywhere.setdefault(k, v)
    modules = parse_pb(pb_dir)
    guessed = 0
    out = [
        f"# Generated by hostsim/proto/generate.py from k8s-pb {args.k8s_pb} and "
        f"k8s-openapi {args.k8s_openapi}. Do not edit.",
    ]
    for module in sorted(modules):
        out.append(f"package {package(module)}")
        for message, fields in modules[module]:
            out.append(f"message {message}")
            exact = names.get((module, letters(message)))
            for number, rust_name, label, kind, target in fields:
                json_name = (exact or {}).get(letters(rust_name))
                if json_name is None and exact and kind == "message" and label == "optional":
                    # A message field the JSON form does not have is a Go struct embedded
                    # with `json:",inline"`: its fields belong to the enclosing object.
                    json_name = "+" + lower_camel(rust_name)
                if json_name is None:
                    # The same type in another version (older betas are not in k8s-openapi),
                    # else the field of that name anywhere.
                    json_name = by_type.get(letters(message), {}).get(letters(rust_name))
                if json_name is None:
                    json_name = everywhere.get(letters(rust_name))
                if json_name is None and rust_name in OVERRIDES:
                    json_name = OVERRIDES[rust_name]
                if json_name is None:
                    json_name = lower_camel(rust_name)
                    guessed += 1
                    print(f"guessed {module}::{message}.{json_name}", file=sys.stderr)

                def type_name(kind, target):
                    if kind != "message":
                        return kind
                    tmod, tname = target
                    return tname if tmod == module else f".{package(tmod)}.{tname}"

                if label == "map":
                    key, value = kind
                    ty = f"map:{key}:{type_name(value, target)}"
                elif label == "repeated":
                    ty = "[]" + type_name(kind, target)
                else:
                    ty = type_name(kind, target)
                out.append(f"{number} {json_name} {ty}")
    # Every message a field names is defined.
    defined = set()
    pkg = None
    for line in out:
        if line.startswith("package "):
            pkg = line.split()[1]
        elif line.startswith("message "):
            defined.add(f".{pkg}.{line.split()[1]}")
    pkg = None
    for line in out:
        if line.startswith("package "):
            pkg = line.split()[1]
        elif line[:1].isdigit():
            ty = line.split()[2].removeprefix("[]").split(":")[-1]
            if ty not in SCALARS:
                full = ty if ty.startswith(".") else f".{pkg}.{ty}"
                if full not in defined:
                    raise SystemExit(f"{line!r} in {pkg} names an undefined message")
    with open(args.out, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {args.out} ({guessed} JSON names guessed)", file=sys.stderr)


if __name__ == "__main__":
    main()

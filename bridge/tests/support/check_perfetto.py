#!/usr/bin/env python3
"""Decode a Granular Perfetto artifact with Perfetto's OFFICIAL schema and
print a JSON summary of what a viewer would see.

Usage: check_perfetto.py TRACE_FILE

Our encoder hand-writes its protobuf structs, so decoding its output with
those same structs cannot catch a wrong field number or wire type. This script
decodes with the generated module shipped in the `perfetto` PyPI package
(perfetto/protos/perfetto/trace/perfetto_trace_pb2.py), where such a mistake
shows up as an unknown field or a wrong value, and replays the events the way
trace processor does to catch structural errors (END without BEGIN, time
going backwards on a track, unterminated flows...).

Output (stdout, one JSON object):
  perfetto_version    version of the `perfetto` package used
  packets             number of TracePackets
  process             {"pid", "name"} of the process descriptor
  tracks              [{"uuid", "name", "parent_uuid", "tid" (or null),
                        "slices", "instants"}] in file order
  slices_by_track     {track name: slice count}, lanes of one name summed
  slice_count, instant_count, flow_count (flows with both ends)
  highlighted         names of slices in the "request" category
  categories          {category: slice count}
  annotations         {slice name: {arg name: value}} (first slice of a name)
  clocks              [[clock_id, timestamp], ...] from ClockSnapshots
  unknown_fields      paths of fields the official schema does not know
  errors              structural problems; empty for a valid trace

Exit status: 0 when decoded (even with errors: the caller asserts on them),
2 on usage or decode failure, 3 when the perfetto package is missing.
"""

import json
import sys
from collections import Counter, defaultdict

try:
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb
except ImportError as err:  # pragma: no cover - exercised by hand
    sys.stderr.write(
        f"cannot import perfetto's trace schema ({err}).\n"
        "Install it with `pip install perfetto` (e.g. into a venv:\n"
        "  python3 -m venv .cache/venv && .cache/venv/bin/pip install perfetto==0.59.1\n"
        "and run the tests with GRANULAR_PYTHON=.cache/venv/bin/python).\n"
    )
    sys.exit(3)

try:
    from google.protobuf import unknown_fields as _unknown
except ImportError:  # older protobuf: messages expose UnknownFields()
    _unknown = None

HIGHLIGHT_CATEGORY = "request"


def _is_repeated(field):
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return flag
    return field.label == field.LABEL_REPEATED


def unknown_field_paths(message, path, out):
    """Appends "path#number" for every unknown field, recursively."""
    if _unknown is not None:
        numbers = [f.field_number for f in _unknown.UnknownFieldSet(message)]
    else:
        numbers = [f.field_number for f in message.UnknownFields()]
    out.extend(f"{path}#{n}" for n in numbers)
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if _is_repeated(field):
            for i, item in enumerate(value):
                unknown_field_paths(item, f"{path}.{field.name}[{i}]", out)
        else:
            unknown_field_paths(value, f"{path}.{field.name}", out)


def summarize(trace):
    errors = []
    unknown = []
    unknown_field_paths(trace, "trace", unknown)

    process = None
    tracks = {}  # uuid -> summary, insertion-ordered
    clocks = []
    stacks = defaultdict(list)  # uuid -> open slice names
    last_ts = {}
    open_flows = set()
    finished_flows = set()
    categories = Counter()
    highlighted = []
    annotations = {}
    slice_count = instant_count = 0

    for index, packet in enumerate(trace.packet):
        where = f"packet {index}"
        if not packet.HasField("trusted_packet_sequence_id"):
            errors.append(f"{where}: no trusted_packet_sequence_id")
        kind = packet.WhichOneof("data")
        if kind == "clock_snapshot":
            clocks.extend([c.clock_id, c.timestamp] for c in packet.clock_snapshot.clocks)
        elif kind == "track_descriptor":
            desc = packet.track_descriptor
            if desc.uuid in tracks or (process and desc.uuid == process["uuid"]):
                errors.append(f"{where}: duplicate track uuid {desc.uuid}")
            if desc.HasField("process"):
                if process is not None:
                    errors.append(f"{where}: second process descriptor")
                process = {
                    "uuid": desc.uuid,
                    "pid": desc.process.pid,
                    "name": desc.process.process_name,
                    "slices": 0,
                    "instants": 0,
                }
                continue
            parent_known = process is not None and desc.parent_uuid == process["uuid"]
            if not parent_known and desc.parent_uuid not in tracks:
                errors.append(f"{where}: track {desc.uuid} has unknown parent {desc.parent_uuid}")
            tid = None
            if desc.HasField("thread"):
                tid = desc.thread.tid
                if process is None or desc.thread.pid != process["pid"]:
                    errors.append(f"{where}: thread {tid} outside the process")
            tracks[desc.uuid] = {
                "uuid": desc.uuid,
                "name": desc.name,
                "parent_uuid": desc.parent_uuid,
                "tid": tid,
                "slices": 0,
                "instants": 0,
            }
        elif kind == "track_event":
            event = packet.track_event
            uuid = event.track_uuid
            if process is not None and uuid == process["uuid"]:
                track = process
            elif uuid in tracks:
                track = tracks[uuid]
            else:
                errors.append(f"{where}: event on undeclared track {uuid}")
                continue
            if not packet.HasField("timestamp"):
                errors.append(f"{where}: event without timestamp")
            if packet.timestamp < last_ts.get(uuid, 0):
                errors.append(f"{where}: time goes backwards on track {uuid}")
            last_ts[uuid] = packet.timestamp
            if event.type == pb.TrackEvent.TYPE_SLICE_BEGIN:
                slice_count += 1
                track["slices"] += 1
                stacks[uuid].append(event.name)
                categories.update(event.categories)
                if HIGHLIGHT_CATEGORY in event.categories:
                    highlighted.append(event.name)
                if event.debug_annotations and event.name not in annotations:
                    annotations[event.name] = {
                        a.name: a.string_value for a in event.debug_annotations
                    }
                for flow in event.flow_ids:
                    if flow in open_flows or flow in finished_flows:
                        errors.append(f"{where}: flow {flow} starts twice")
                    open_flows.add(flow)
                for flow in event.terminating_flow_ids:
                    if flow not in open_flows:
                        errors.append(f"{where}: flow {flow} ends before it starts")
                    open_flows.discard(flow)
                    finished_flows.add(flow)
            elif event.type == pb.TrackEvent.TYPE_SLICE_END:
                if not stacks[uuid]:
                    errors.append(f"{where}: SLICE_END without BEGIN on track {uuid}")
                else:
                    stacks[uuid].pop()
            elif event.type == pb.TrackEvent.TYPE_INSTANT:
                instant_count += 1
                track["instants"] += 1
            else:
                errors.append(f"{where}: unexpected event type {event.type}")
        else:
            errors.append(f"{where}: unexpected packet kind {kind}")

    for uuid, stack in stacks.items():
        if stack:
            errors.append(f"track {uuid}: slices never ended: {stack}")
    for flow in sorted(open_flows):
        errors.append(f"flow {flow}: never terminated")
    if process is None:
        errors.append("no process descriptor")

    by_name = Counter()
    for track in tracks.values():
        by_name[track["name"]] += track["slices"]

    try:
        from importlib.metadata import version

        perfetto_version = version("perfetto")
    except Exception:  # noqa: BLE001 - version is informational only
        perfetto_version = None

    return {
        "perfetto_version": perfetto_version,
        "packets": len(trace.packet),
        "process": None if process is None else {"pid": process["pid"], "name": process["name"]},
        "tracks": list(tracks.values()),
        "slices_by_track": dict(by_name),
        "slice_count": slice_count,
        "instant_count": instant_count,
        "flow_count": len(finished_flows),
        "highlighted": highlighted,
        "categories": dict(categories),
        "annotations": annotations,
        "clocks": clocks,
        "unknown_fields": unknown,
        "errors": errors,
    }


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(f"usage: {argv[0]} TRACE_FILE\n")
        return 2
    with open(argv[1], "rb") as f:
        data = f.read()
    trace = pb.Trace()
    try:
        trace.ParseFromString(data)
    except Exception as err:  # noqa: BLE001 - any decode failure is fatal
        sys.stderr.write(f"not a valid perfetto.protos.Trace: {err}\n")
        return 2
    json.dump(summarize(trace), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

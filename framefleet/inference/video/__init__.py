"""Videos across a fleet: probe and plan, process one segment, merge the segments.

- `probe`: what a container holds (frames counted by demuxing, not taken from its header);
- `plan`: a video becomes segments with warm-up frames for tracking;
- `frames`: decode a segment's frames, seeking to the keyframe before it;
- `tracking`: one ByteTrack per segment;
- `encode`: H.264 parts with PyAV, and joining them without re-encoding;
- `segment`: one segment's results and annotated part;
- `merge`: one video, one JSON Lines results file and one document from the parts.
"""

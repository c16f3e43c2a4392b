"""v1recon: reconstruct the movie a mouse saw from the activity of its visual cortex."""

__version__ = "0.1.0"

FRAME_RATE_HZ = 30.0
FRAME_SHAPE = (36, 64)  # height, width in pixels
EVAL_START_FRAME = 30  # first frame with a full second of context
BEHAVIOUR_CHANNELS = ("pupil_dilation", "running_speed", "pupil_x", "pupil_y")

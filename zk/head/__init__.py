"""The attention head's proof (zkAttn) and the stacks of committed witness tensors it uses."""

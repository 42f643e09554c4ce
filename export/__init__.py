"""ONNX export of the deployable actor with the policy contract embedded (DESIGN contract 4)."""

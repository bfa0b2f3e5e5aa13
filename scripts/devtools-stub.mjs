// Stands in for react-devtools-core in the TUI bundle (Ink loads it only when DEV=true).
export default { initialize() {}, connectToDevTools() {} };

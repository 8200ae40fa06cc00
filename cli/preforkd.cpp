// The preforkd executable: the library's main with the built-in protocols only.
#include <preforkd/main.hpp>

int main(int argc, char** argv) { return preforkd::main(argc, argv, {}); }

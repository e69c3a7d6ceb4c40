"""The daemon: an I/O shell (plain sockets in one epoll loop; pyzmq for the ZeroMQ planes) around
groupcomm.core.Node (no protocol logic here)."""
